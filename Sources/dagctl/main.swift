import DagctlCLI

await DagctlMain.run()
