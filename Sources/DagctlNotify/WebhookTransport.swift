import AsyncHTTPClient
import Foundation
import NIOCore
import NIOHTTP1

/// How a POST to a webhook ended.
public enum PostOutcome: Sendable, Equatable {
    /// The receiver answered: its status and the start of its body (for the log).
    case answered(status: Int, body: String)
    /// No answer: refused, timed out, DNS, TLS…
    case unreachable(String)
}

/// Sends one POST. The seam between the outbox and the network. `cancelled` is asked while waiting:
/// when it says yes (dagctl got a signal) the request is abandoned.
public protocol WebhookTransport: Sendable {
    func post(_ url: URL, body: Data, headers: [(String, String)], timeout: TimeInterval, cancelled: @escaping () -> Bool) -> PostOutcome
}

extension WebhookTransport {
    public func post(_ url: URL, body: Data, headers: [(String, String)], timeout: TimeInterval) -> PostOutcome {
        post(url, body: body, headers: headers, timeout: timeout, cancelled: { false })
    }
}

/// POSTs with async-http-client. Redirects are not followed (a signed body goes only where the file
/// says), and only the first 2 KiB of an answer is kept, whatever the receiver sends.
public final class HTTPWebhookTransport: WebhookTransport {
    private let client: HTTPClient

    public init() {
        var configuration = HTTPClient.Configuration(redirectConfiguration: .disallow)
        configuration.timeout = HTTPClient.Configuration.Timeout(connect: .seconds(10))
        // A refused connection fails now; the outbox tries again on a later run, with its own backoff.
        configuration.connectionPool.retryConnectionEstablishment = false
        client = HTTPClient(eventLoopGroupProvider: .singleton, configuration: configuration)
    }

    deinit { try? client.syncShutdown() }

    public func post(_ url: URL, body: Data, headers: [(String, String)], timeout: TimeInterval, cancelled: @escaping () -> Bool) -> PostOutcome {
        var fields = HTTPHeaders(headers)
        fields.replaceOrAdd(name: "Content-Type", value: "application/json")
        fields.replaceOrAdd(name: "User-Agent", value: "dagctl")
        do {
            let request = try HTTPClient.Request(url: url, method: .POST, headers: fields, body: .bytes(body))
            let deadline = NIODeadline.now() + .milliseconds(Int64(timeout * 1000))
            let task = client.execute(request: request, delegate: FirstBytes(limit: 2048), deadline: deadline)
            let done = DispatchSemaphore(value: 0)
            task.futureResult.whenComplete { _ in done.signal() }
            while done.wait(timeout: .now() + .milliseconds(100)) == .timedOut {
                if cancelled() {
                    task.cancel()
                    return .unreachable("not sent: dagctl was stopped by a signal")
                }
            }
            let answer = try task.futureResult.wait()
            return .answered(status: answer.status, body: answer.body)
        } catch let error as HTTPClientError where error == .deadlineExceeded || error == .readTimeout || error == .connectTimeout {
            return .unreachable("no answer within \(Int(timeout.rounded())) s")
        } catch {
            return .unreachable(Self.describe(error))
        }
    }

    static func describe(_ error: Error) -> String {
        let text = String(describing: error)
        if text.contains("connectionRefused") || text.contains("Connection refused") { return "connection refused" }
        return text
    }
}

/// Keeps the status and the first `limit` bytes of the body; the rest is read and dropped.
final class FirstBytes: HTTPClientResponseDelegate, @unchecked Sendable {
    struct Answer: Sendable { var status: Int; var body: String }
    private let limit: Int
    // Touched on the request's event loop only.
    private var status = 0
    private var bytes: [UInt8] = []

    init(limit: Int) { self.limit = limit }

    func didReceiveHead(task: HTTPClient.Task<Answer>, _ head: HTTPResponseHead) -> EventLoopFuture<Void> {
        status = Int(head.status.code)
        return task.eventLoop.makeSucceededFuture(())
    }

    func didReceiveBodyPart(task: HTTPClient.Task<Answer>, _ buffer: ByteBuffer) -> EventLoopFuture<Void> {
        if bytes.count < limit { bytes += buffer.readableBytesView.prefix(limit - bytes.count) }
        return task.eventLoop.makeSucceededFuture(())
    }

    func didFinishRequest(task: HTTPClient.Task<Answer>) throws -> Answer {
        Answer(status: status, body: String(decoding: bytes, as: UTF8.self))
    }
}
