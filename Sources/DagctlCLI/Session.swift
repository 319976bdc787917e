import DagctlBackends
import DagctlEngine
import DagctlGit
import DagctlPlanning
import DagctlSpec
import DagctlState
import ArgumentParser

/// The three inputs of a run, loaded and checked: the repository, the desired state and the state file.
/// Problems that stop every environment (no repository, bad members.yaml, unreadable state) end the
/// command here with a clear message and exit 1.
struct Session {
    let repo: GitRepository
    let desired: DesiredState
    let store: StateStore
    let state: StateFile
    /// Split records repaired while loading (`StateStore.loadRepairing`); a caller holding the lock saves them.
    let repairs: [String]

    /// `environments` (when not empty) limits which environment files are read.
    static func open(_ inputs: InputOptions, environments: [String] = []) throws -> Session {
        let repo: GitRepository
        do { repo = try GitRepository.open(inputs.repo) } catch { throw Console.fail(error.description) }
        let desired = DesiredState.load(inputs.desired, only: environments.isEmpty ? nil : Set(environments))
        if !desired.membersOK {
            let problems = desired.issues.filter { !$0.file.contains("/environments/") }
            throw Console.fail("the desired state cannot be used:\n" + problems.map { "  " + $0.description }.joined(separator: "\n"))
        }
        let store = StateStore(path: inputs.state)
        let loaded: (state: StateFile, repairs: [String])
        do { loaded = try store.loadRepairing() } catch { throw Console.fail(error.description) }
        return Session(repo: repo, desired: desired, store: store, state: loaded.state, repairs: loaded.repairs)
    }

    var planner: Planner {
        Planner(repo: repo, desired: desired, state: state, layout: store.layout, history: store.history, verify: SSHSignatures.verify)
    }
}
