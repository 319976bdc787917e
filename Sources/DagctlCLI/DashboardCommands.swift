import ArgumentParser
import DagctlSpec
import DagctlState
import DagctlWeb
import Foundation

/// The dashboard's data, from the same inputs as every command.
func dashboardSite(_ inputs: InputOptions) -> Site {
    Site(store: StateStore(path: inputs.state), desired: DesiredState.load(inputs.desired), repoPath: inputs.repo,
         statusJSON: { ReportJSON.document($0) },
         planJSON: { ReportJSON.plan($0, $1).rendered() + "\n" })
}

struct ServeCommand: AsyncParsableCommand {
    static let configuration = CommandConfiguration(
        commandName: "serve",
        abstract: "Serve a read-only web dashboard of the environments, plans, diffs and live logs.",
        discussion: """
            Pages: / (every environment), /plans/<id> (changed files with their diffs, approvals, the \
            approve and retry commands, attempts), /plans/<id>/attempts/<n>/<build|run> (the log, followed \
            live while the phase runs), /environments/<env>/history, /api/status and /api/plans/<id> (JSON). \
            It reads the files on each request, writes nothing, takes no lock and works while a reconcile runs. \
            Only GET and HEAD are answered. It listens on 127.0.0.1 unless --listen says otherwise.
            """)

    @OptionGroup var inputs: InputOptions

    @Option(help: ArgumentHelp("host:port to listen on (port 0 picks a free one).", valueName: "addr"))
    var listen = "127.0.0.1:8080"

    func run() async throws {
        guard let colon = listen.lastIndex(of: ":"), let port = Int(listen[listen.index(after: colon)...]), (0...65535).contains(port) else {
            throw ValidationError("--listen takes host:port, e.g. 127.0.0.1:8080")
        }
        let host = String(listen[..<colon]).trimmingCharacters(in: CharacterSet(charactersIn: "[]"))
        let server = DashboardServer(site: dashboardSite(inputs), host: host.isEmpty ? "127.0.0.1" : host, port: port)
        try await server.run { url in Console.out("dagctl serve: listening on \(url)\n") }
    }
}

struct ReportCommand: ParsableCommand {
    static let configuration = CommandConfiguration(
        commandName: "report",
        abstract: "Write the dashboard's pages as static HTML files (relative links) for publishing.",
        discussion: "The pages are written into a new folder beside DIR and swapped into place in one step, so DIR always holds a whole report. DIR must be a folder (or not exist yet), not a file or a symbolic link.")

    @OptionGroup var inputs: InputOptions

    @Option(help: ArgumentHelp("The folder to write the pages to.", valueName: "dir"))
    var html: String

    func run() throws {
        do {
            let pages = try StaticReport.write(dashboardSite(inputs), to: html)
            Console.out("wrote \(pages) pages to \(html); open \(html)/index.html\n")
        } catch let error as CocoaError {
            // A file the report could not write: say which and why, not Foundation's error dump.
            let path = (error.userInfo[NSURLErrorKey] as? URL)?.path ?? (error.userInfo[NSFilePathErrorKey] as? String) ?? html
            throw Console.fail("cannot write the report: \(path): \(error.localizedDescription) Nothing was changed at \(html).")
        } catch {
            throw Console.fail("\(error)")
        }
    }
}
