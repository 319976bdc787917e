import ArgumentParser
import DagctlEngine
import DagctlSpec

struct ApproveCommand: ParsableCommand {
    static let configuration = CommandConfiguration(
        commandName: "approve",
        abstract: "Write (and sign) an approval or rejection of a plan into the desired-state directory.")

    @Argument(help: "The plan id, e.g. prod-v8-1a2b3c4d5e.")
    var planID: String

    @Option(name: .customLong("as"), help: "The member deciding.")
    var member: String

    @Option(help: "SSH private key to sign with (one of the member's keys in members.yaml).")
    var key: String?

    @Flag(help: "Reject the plan instead of approving it.")
    var reject = false

    @Option(help: "A comment kept in the file.")
    var comment: String?

    @OptionGroup var inputs: InputOptions

    func validate() throws {
        guard Names.isValid(member) else { throw ValidationError("'\(member)' is not a valid member name") }
    }

    func run() throws {
        let session = try Session.open(inputs)
        let writer = DecisionWriter(planner: session.planner, history: session.store.history)
        let decision: ApprovalFile.Decision = reject ? .reject : .approve
        do {
            let path = try writer.approve(planID: planID, as: member, decision: decision, comment: comment, keyPath: key)
            Console.out("wrote \(path) (\(decision.rawValue) by \(member)\(key == nil ? "" : ", signed"))\n")
            Console.out("commit it to the desired-state repository; the next reconcile reads it\n")
        } catch {
            throw Console.fail("\(error)")
        }
    }
}

struct RetryCommand: ParsableCommand {
    static let configuration = CommandConfiguration(
        commandName: "retry",
        abstract: "Write (and sign) a request to retry a failed plan into the desired-state directory.")

    @Argument(help: "The plan id of a failed plan.")
    var planID: String

    @Option(name: .customLong("as"), help: "The member asking.")
    var member: String

    @Option(help: "SSH private key to sign with (one of the member's keys in members.yaml).")
    var key: String?

    @OptionGroup var inputs: InputOptions

    func validate() throws {
        guard Names.isValid(member) else { throw ValidationError("'\(member)' is not a valid member name") }
    }

    func run() throws {
        let session = try Session.open(inputs)
        let writer = DecisionWriter(planner: session.planner, history: session.store.history)
        do {
            let (path, retries) = try writer.retry(planID: planID, as: member, keyPath: key)
            Console.out("wrote \(path) (retries: \(retries) by \(member)\(key == nil ? "" : ", signed"))\n")
            Console.out("commit it to the desired-state repository; the next reconcile starts attempt \(retries + 1)\n")
        } catch {
            throw Console.fail("\(error)")
        }
    }
}
