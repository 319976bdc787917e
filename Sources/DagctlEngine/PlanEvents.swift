import DagctlPlanning
import DagctlSpec
import DagctlState

/// The notifications one state write causes (SPEC §9), found by comparing an environment's plans before
/// and after the write. Every transition goes through that write, whichever phase, plan kind or
/// backend made it, so no path can change a plan without its event, and the event is written in the
/// same atomic write as the change.
struct PlanEvents {
    let notifications: NotificationsSpec
    let env: EnvironmentSpec
    let members: Members
    /// The review of the newest pending plan, when this run judged it (who may approve, how many more).
    let review: ApprovalReview?

    /// Events for what changed from `old` to `new`, in the order they happened, routed to the webhooks
    /// that want them; an event no webhook wants is not recorded.
    func entries(from old: EnvironmentState?, to new: EnvironmentState, at time: String) -> [OutboxEntry] {
        events(from: old, to: new, at: time).compactMap { event in
            let receivers = notifications.receivers(of: event.event, environment: env.name)
            return receivers.isEmpty ? nil : OutboxEntry(event: event, deliveries: receivers.map { Delivery(webhook: $0.name) })
        }
    }

    func events(from old: EnvironmentState?, to new: EnvironmentState, at time: String) -> [NotificationEvent] {
        var out: [NotificationEvent] = []
        let newest = new.plans.last?.id
        for plan in new.plans {
            let before = old?.plans.first { $0.id == plan.id }
            let changed = before?.status != plan.status
            let started = plan.attempts.dropFirst(before?.attempts.count ?? 0)
            // Decisions come before the attempts they allow; outcomes after the attempts they end. An
            // attempt started from a plan that was not approved before this write was approved in it.
            if changed {
                switch plan.status {
                case .pending where env.requiredApprovals > 0: out.append(pending(plan, review: plan.id == newest ? review : nil, at: time))
                case .approved: out.append(event(.planApproved, plan, at: time))
                case .rejected: out.append(event(.planRejected, plan, at: time))
                case .superseded: out.append(event(.planSuperseded, plan, at: time))
                case _ where !started.isEmpty && !(before?.status.isActive ?? false):
                    var approved = event(.planApproved, plan, at: time)
                    approved.status = PlanStatus.approved.rawValue
                    approved.attempt = nil
                    out.append(approved)
                default: break
                }
            }
            for attempt in started {
                var started = event(.attemptStarted, plan, at: time)
                started.attempt = attempt.n
                started.status = PlanStatus.building.rawValue
                out.append(started)
            }
            if changed, plan.status == .succeeded {
                var done = event(.planSucceeded, plan, at: time)
                done.reason = done.reason ?? "deployed \(plan.commit.prefix(10))" + (plan.version.isEmpty ? "" : " (version \(plan.version))") + " to \(env.name)"
                out.append(done)
            } else if changed, plan.status == .failed {
                out.append(failed(plan, at: time))
            }
        }
        return out
    }

    private func event(_ kind: EventKind, _ plan: Plan, at time: String) -> NotificationEvent {
        NotificationEvent(event: kind, environment: env.name, plan: plan.id, status: plan.status.rawValue, reason: plan.statusReason,
                          scope: plan.scope.rawValue, select: plan.select, commit: plan.commit, author: plan.author,
                          approversNeeded: 0, url: notifications.planURL(plan.id), at: time,
                          attempt: [.planSucceeded, .planFailed].contains(kind) ? plan.attempts.last?.n : nil)
    }

    private func pending(_ plan: Plan, review: ApprovalReview?, at time: String) -> NotificationEvent {
        var e = event(.planPending, plan, at: time)
        e.approversNeeded = review?.missing ?? env.requiredApprovals
        e.mayApprove = review?.eligible ?? ApprovalRules.eligible(env: env, members: members, author: plan.author)
        e.approveCommand = NextSteps.lines(for: plan, env: env, members: members, review: review).first { $0.hasPrefix("dagctl approve ") }
        if e.reason == nil { e.reason = review?.waitingSummary }
        return e
    }

    private func failed(_ plan: Plan, at time: String) -> NotificationEvent {
        var e = event(.planFailed, plan, at: time)
        e.failedNodes = plan.attempts.last?.failedNodes ?? []
        // The line without its "(or as …)" tail: one command to copy.
        e.retryCommand = NextSteps.lines(for: plan, env: env, members: members, review: nil)
            .first { $0.hasPrefix("dagctl retry ") }
            .map { $0.components(separatedBy: "   (or as").first! }
        return e
    }
}
