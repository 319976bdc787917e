import DagctlCLI

DagctlMain.run()
