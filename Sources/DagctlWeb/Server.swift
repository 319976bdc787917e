import DagctlPlanning
import DagctlState
import Foundation
import Hummingbird
import NIOCore

/// `dagctl serve`: the dashboard over HTTP, read-only. Every page is built from the files when asked
/// for; logs of running phases and the overview follow changes with Server-Sent Events.
public struct DashboardServer {
    public let site: Site
    public let host: String
    public let port: Int

    public init(site: Site, host: String, port: Int) {
        self.site = site
        self.host = host
        self.port = port
    }

    /// Serves until stopped; `started` gets the address once the port is bound (port 0 picks one).
    public func run(started: @escaping @Sendable (String) -> Void) async throws {
        let router = Router()
        router.add(middleware: ReadOnly())
        let site = self.site
        let links = Links(.server)
        let html = Self.html, json = Self.json
        let notFound = Response(status: .notFound, headers: [.contentType: "text/plain; charset=utf-8"],
                                body: .init(byteBuffer: ByteBuffer(string: "not found\n")))
        func route(_ path: RouterPath, _ handler: @escaping @Sendable (Request, BasicRequestContext) async throws -> Response) {
            // A state file that cannot be read is said on the page, as `dagctl status` says it.
            let answer: @Sendable (Request, BasicRequestContext) async throws -> Response = { request, context in
                do { return try await handler(request, context) } catch {
                    return Response(status: .internalServerError, headers: [.contentType: "text/plain; charset=utf-8", .cacheControl: "no-store"],
                                    body: .init(byteBuffer: ByteBuffer(string: "dagctl serve cannot show this page: \(error)\n\nRun `dagctl status` with the same --state for the same message; the page answers again once the file is fixed.\n")))
                }
            }
            router.get(path, use: answer)
            router.head(path, use: answer)
        }

        route("/") { _, _ in html(Pages.overview(site, try site.state(), links: links)) }
        route("/plans/:id") { _, context in
            let state = try site.state()
            guard let id = context.parameters.get("id"), let (plan, env) = site.plan(id, in: state) else { return notFound }
            return html(Pages.plan(site, plan, env, links: links))
        }
        route("/plans/:id/attempts/:n/:phase") { _, context in
            guard let (plan, attempt, phase, path) = try Self.logTarget(site, context) else { return notFound }
            let tail = Site.logTail(path, root: site.store.layout.logs) ?? Site.LogTail(text: "", size: 0, skipped: 0)
            return html(Pages.log(plan, attempt: attempt, phase: phase, tail: tail, links: links))
        }
        route("/plans/:id/attempts/:n/:phase/stream") { request, context in
            guard let (plan, attempt, phase, path) = try Self.logTarget(site, context) else { return notFound }
            let from = request.uri.queryParameters.get("from").flatMap { UInt64($0) } ?? 0
            return Self.events { writer in
                try await Self.follow(path, root: site.store.layout.logs, from: from, writer: &writer) {
                    let now = (try? site.state()).flatMap { site.plan(plan.id, in: $0)?.0.attempts.first { $0.n == attempt.n } }
                    guard let now, now.outcome == .running, now.phase.rawValue == phase else { return now?.outcome.rawValue ?? "finished" }
                    return nil
                }
            }
        }
        route("/environments/:env/history") { _, context in
            let state = try site.state()
            guard let env = context.parameters.get("env"), site.environments(state).contains(where: { $0.name == env }) else { return notFound }
            return html(Pages.history(env, plans: site.history(env), links: links))
        }
        route("/api/status") { _, _ in
            let state = try site.state()
            return json(site.statusJSON(site.environments(state).map { site.report($0) }))
        }
        route("/api/plans/:id") { _, context in
            let state = try site.state()
            guard let id = context.parameters.get("id"), let (plan, env) = site.plan(id, in: state) else { return notFound }
            return json(site.planJSON(plan, site.report(env, plan: plan)))
        }
        route("/events") { _, _ in
            Self.events { writer in
                var last = Site.stamp(site.store.path)
                var quiet = 0
                while true {
                    try await Task.sleep(for: .milliseconds(500))
                    let now = Site.stamp(site.store.path)
                    if now != last {
                        last = now
                        try await writer.write(ByteBuffer(string: "event: change\ndata: state\n\n"))
                    } else if quiet >= 30 {
                        try await writer.write(ByteBuffer(string: ": alive\n\n"))  // also notices a client gone
                        quiet = 0
                    }
                    quiet += 1
                }
            }
        }

        let app = Application(router: router, configuration: .init(address: .hostname(host, port: port), serverName: "dagctl"),
                              onServerRunning: { channel in started("http://\(channel.localAddress?.ipAddress ?? "127.0.0.1"):\(channel.localAddress?.port ?? 0)") })
        try await app.runService()
    }

    @Sendable static func html(_ text: String) -> Response {
        Response(status: .ok, headers: [.contentType: "text/html; charset=utf-8", .cacheControl: "no-store"],
                 body: .init(byteBuffer: ByteBuffer(string: text)))
    }

    @Sendable static func json(_ text: String) -> Response {
        Response(status: .ok, headers: [.contentType: "application/json"], body: .init(byteBuffer: ByteBuffer(string: text)))
    }

    /// The log a URL names, looked up (plan, attempt number, phase) and never taken as a path.
    static func logTarget(_ site: Site, _ context: BasicRequestContext) throws -> (Plan, Attempt, String, String)? {
        let state = try site.state()
        guard let id = context.parameters.get("id"), let (plan, _) = site.plan(id, in: state),
              let n = context.parameters.get("n").flatMap(Int.init), let attempt = plan.attempts.first(where: { $0.n == n }),
              let phase = context.parameters.get("phase"), ["build", "run"].contains(phase) else { return nil }
        return (plan, attempt, phase, site.store.layout.log(plan.id, attempt: n, phase: phase))
    }

    static func events(_ body: @escaping @Sendable (inout any ResponseBodyWriter) async throws -> Void) -> Response {
        Response(status: .ok, headers: [.contentType: "text/event-stream", .cacheControl: "no-store"], body: ResponseBody { writer in
            do { try await body(&writer) } catch {}  // a client that left ends the stream
            try? await writer.finish(nil)
        })
    }

    /// Sends each new line of `path` from byte `offset` as an `line` event, checking twice a second; when
    /// `ended()` says the phase is over (and nothing new came), sends `end` with it and stops. Reads only
    /// what was appended, so memory stays flat however long the log grows.
    static func follow(_ path: String, root: String, from offset: UInt64, writer: inout any ResponseBodyWriter, ended: () -> String?) async throws {
        var offset = offset
        var partial = Data()
        var idle = 0
        while true {
            var grew = false
            if let handle = Site.openLog(path, root: root) {
                defer { try? handle.close() }
                try handle.seek(toOffset: offset)
                if let data = try handle.read(upToCount: 1 << 20), !data.isEmpty {
                    offset += UInt64(data.count)
                    partial.append(data)
                    grew = true
                    // A line longer than 64 KiB is sent in pieces rather than held without bound.
                    while let end = partial.firstIndex(of: 10) ?? (partial.count > 1 << 16 ? partial.startIndex + (1 << 16) : nil) {
                        let line = String(decoding: partial[partial.startIndex..<end], as: UTF8.self)
                        partial.removeSubrange(partial.startIndex..<min(end + 1, partial.endIndex))
                        try await writer.write(ByteBuffer(string: "event: line\ndata: \(line.replacingOccurrences(of: "\r", with: ""))\n\n"))
                    }
                }
            }
            if !grew {
                idle += 1
                if idle % 2 == 0, let outcome = ended() {
                    try await writer.write(ByteBuffer(string: "event: end\ndata: \(outcome)\n\n"))
                    return
                }
                if idle % 30 == 0 { try await writer.write(ByteBuffer(string: ": alive\n\n")) }
            }
            try await Task.sleep(for: .milliseconds(500))
        }
    }
}

/// Any method but GET and HEAD: 405.
struct ReadOnly<Context: RequestContext>: RouterMiddleware {
    func handle(_ request: Request, context: Context, next: (Request, Context) async throws -> Response) async throws -> Response {
        guard request.method == .get || request.method == .head else {
            return Response(status: .methodNotAllowed, headers: [.allow: "GET, HEAD"])
        }
        return try await next(request, context)
    }
}
