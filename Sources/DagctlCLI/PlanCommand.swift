import ArgumentParser
import DagctlEngine
import DagctlPlanning
import Foundation

struct PlanCommand: ParsableCommand {
    static let configuration = CommandConfiguration(
        commandName: "plan",
        abstract: "Preview what reconcile would do: the next plan of each environment. Records and deploys nothing.",
        discussion: """
            Runs no dbt build. It may ask the tools what they would do: SQLMesh's planner for a SQLMesh \
            project, and dbt parse of the deployed commit for a scope_mode: precise environment without \
            a kept manifest (their output goes to state/logs/explain/).
            """)

    @OptionGroup var inputs: InputOptions

    @OptionGroup var filter: EnvironmentFilter

    @Option(help: "Preview the plan the environment would get if its ref pointed at REF (a pull-request branch).")
    var ref: String?

    @Option(help: "Diff against COMMIT instead of the deployed commit.")
    var base: String?

    @Option(help: "Use FILE (a dbt manifest.json, say from a production run) as the base commit's manifest; implies scope_mode: precise for this preview.")
    var manifest: String?

    @Option(help: "text, json or markdown.")
    var output: OutputFormat = .text

    func run() throws {
        try Self.preview(inputs: inputs, environments: filter.names, ref: ref, base: base, output: output, manifest: manifest)
    }

    static func preview(inputs: InputOptions, environments: [String], ref: String?, base: String?, output: OutputFormat,
                        manifest: String? = nil) throws {
        let session = try Session.open(inputs, environments: environments)
        var planner = session.planner
        planner.now = NotificationClock.now
        if let manifest {
            guard let data = FileManager.default.contents(atPath: manifest) else { throw Console.fail("cannot read --manifest \(manifest)") }
            do { planner.givenManifest = try DependencyIndex.build(manifest: data, commit: "", source: "--manifest \(manifest)") } catch {
                throw Console.fail("--manifest \(manifest): \(error)")
            }
        }
        let reports = planner.selectedEnvironments(environments).map { planner.preview($0, ref: ref, base: base) }
        switch output {
        case .json: Console.out(ReportJSON.document(reports))
        case .markdown: Console.out(ReportMarkdown.render(reports, title: "plan"))
        case .text: Console.out(ReportText.render(reports))
        }
        if reports.contains(where: { !$0.errors.isEmpty }) { throw ExitCode(1) }
    }
}
