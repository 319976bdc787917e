import ArgumentParser

struct CompletionsCommand: ParsableCommand {
    static let configuration = CommandConfiguration(
        commandName: "completions",
        abstract: "Print a shell completion script for bash, zsh or fish.",
        discussion: """
            bash:  dagctl completions bash > /etc/bash_completion.d/dagctl   (or source it from ~/.bashrc)
            zsh:   dagctl completions zsh > "${fpath[1]}/_dagctl"
            fish:  dagctl completions fish > ~/.config/fish/completions/dagctl.fish
            """)

    enum Shell: String, ExpressibleByArgument, CaseIterable { case bash, zsh, fish }

    @Argument(help: "bash, zsh or fish.")
    var shell: Shell

    func run() throws {
        let kind: CompletionShell = switch shell {
        case .bash: .bash
        case .zsh: .zsh
        case .fish: .fish
        }
        Console.out(Dagctl.completionScript(for: kind))
    }
}
