import ArgumentParser
import DagctlEngine
import DagctlSpec

/// What `approve` and `retry` share: the plan, who decides, and the key they sign with.
struct DecisionOptions: ParsableArguments {
    @Argument(help: "The plan id, e.g. prod-v8-1a2b3c4d5e.")
    var planID: String

    @Option(name: .customLong("as"), help: ArgumentHelp("The member deciding.", valueName: "member"))
    var member: String

    @Option(help: ArgumentHelp("SSH private key to sign with (one of the member's keys in members.yaml).", valueName: "path"))
    var key: String?

    func validate() throws {
        guard Names.isValid(member) else { throw ValidationError("'\(member)' is not a valid member name") }
    }

    var signed: String { key == nil ? "" : ", signed" }
}

struct ApproveCommand: ParsableCommand {
    static let configuration = CommandConfiguration(
        commandName: "approve",
        abstract: "Write (and sign) an approval or rejection of a plan into the desired-state directory.")

    @OptionGroup var decision: DecisionOptions

    @Flag(help: "Reject the plan instead of approving it.")
    var reject = false

    @Option(help: "A comment kept in the file (and signed with it).")
    var comment: String?

    @Flag(help: "Replace this member's existing decision file for the plan.")
    var force = false

    @OptionGroup var inputs: InputOptions

    func run() throws {
        let session = try Session.open(inputs)
        let writer = DecisionWriter(planner: session.planner, history: session.store.history)
        let verdict: ApprovalFile.Decision = reject ? .reject : .approve
        do {
            let path = try writer.approve(planID: decision.planID, as: decision.member, decision: verdict, comment: comment,
                                          keyPath: decision.key, force: force)
            Console.out("wrote \(path) (\(verdict.rawValue) by \(decision.member)\(decision.signed))\n")
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

    @OptionGroup var decision: DecisionOptions

    @OptionGroup var inputs: InputOptions

    func run() throws {
        let session = try Session.open(inputs)
        let writer = DecisionWriter(planner: session.planner, history: session.store.history)
        do {
            let (path, retries) = try writer.retry(planID: decision.planID, as: decision.member, keyPath: decision.key)
            Console.out("wrote \(path) (retries: \(retries) by \(decision.member)\(decision.signed))\n")
            Console.out("commit it to the desired-state repository; the next reconcile starts attempt \(retries + 1)\n")
        } catch {
            throw Console.fail("\(error)")
        }
    }
}

struct RollbackCommand: ParsableCommand {
    static let configuration = CommandConfiguration(
        commandName: "rollback",
        abstract: "Write (and sign) a request to roll an environment back to an earlier deploy and pin it there.",
        discussion: """
            Writes rollbacks/<env>.yaml. The next reconcile explains the rollback plan <env>-rollback-<10 hex> \
            from the deployed commit back to the target's commit; it needs the environment's approvals like \
            any plan. Until the file is deleted the environment is pinned: new versions are explained but \
            not deployed.
            """)

    @Argument(help: "The environment to roll back.")
    var env: String

    @Option(help: ArgumentHelp("The plan to go back to: one that succeeded in the environment (dagctl status --env ENV --history lists them).", valueName: "plan-id"))
    var to: String

    @Option(name: .customLong("as"), help: ArgumentHelp("The member asking.", valueName: "member"))
    var member: String

    @Option(help: ArgumentHelp("SSH private key to sign with (one of the member's keys in members.yaml).", valueName: "path"))
    var key: String?

    @Flag(help: "Replace an existing rollbacks/<env>.yaml.")
    var force = false

    @OptionGroup var inputs: InputOptions

    func validate() throws {
        guard Names.isValid(env) else { throw ValidationError("'\(env)' is not a valid environment name") }
        guard Names.isValid(member) else { throw ValidationError("'\(member)' is not a valid member name") }
        guard Names.isValidPlanID(to) else { throw ValidationError("'\(to)' is not a plan id") }
    }

    func run() throws {
        let session = try Session.open(inputs)
        let writer = DecisionWriter(planner: session.planner, history: session.store.history)
        do {
            let (path, target, next) = try writer.rollback(env: env, to: to, as: member, keyPath: key, force: force)
            Console.out("wrote \(path) (rollback of \(env) to \(target.id), commit \(target.commit.prefix(10)), by \(member)\(key == nil ? "" : ", signed"))\n")
            Console.out(next + "\n")
            Console.out("while the file exists \(env) is pinned (new versions are explained, not deployed); delete it to unpin\n")
        } catch {
            throw Console.fail("\(error)")
        }
    }
}
