import Foundation
import SparkgateCore
import SparkgateTestSupport
import Testing

/// The ledger against a model of what Spark runs: random executes (duplicate ids among them), reattaches,
/// interrupts, releases, cancels, cut streams and backend errors from several clients, each call reaching
/// "Spark" only when the ledger admits it. Whatever the order, the ledger never counts fewer operations than
/// Spark runs, so no request can make it forget a running operation and run past a limit.
@Suite("Session ledger against a model of Spark")
struct LedgerModelTests {
    /// What Spark runs: per session, its operations and whether each can be reattached.
    struct SparkModel {
        var running: [SessionKey: [String: Bool]] = [:]
        func count(_ session: SessionKey) -> Int { running[session]?.count ?? 0 }
        func count(team: String) -> Int {
            running.filter { $0.key.owner.team == team }.values.reduce(0) { $0 + $1.count }
        }
    }

    /// A stream the gateway forwards: the call the ledger admitted, on an operation Spark runs.
    struct OpenStream {
        var admitted: AdmittedCall
        var operation: String
    }

    static let users = [
        UserKey(team: "red", user: "ann"), UserKey(team: "red", user: "bo"), UserKey(team: "blue", user: "cy"),
    ]
    static let sessionIDs = (1...3).map { "00000000-0000-4000-8000-00000000000\($0)" }
    static let operationIDs = (1...4).map { "10000000-0000-4000-8000-00000000000\($0)" }

    var quotas: QuotaSettings {
        var q = QuotaSettings()
        q.requestsPerSecond = 0
        q.housekeepingRequestsPerSecond = 0
        q.maxSessionsPerUser = 3
        q.maxConcurrentOperationsPerSession = 2
        q.maxConcurrentOperationsPerTeam = 4
        return q
    }

    @Test("the ledger's count never drops below what Spark runs", arguments: 0..<4)
    func neverBelowSpark(round: Int) {
        let seed =
            ProcessInfo.processInfo.environment["SPARKGATE_SEED"].flatMap(UInt64.init)
            ?? UInt64.random(in: 0...UInt64.max)
        print("LedgerModelTests seed \(seed) (round \(round))")
        var rng = SplitMix64(seed: seed)
        var ledger = SessionLedger()
        var spark = SparkModel()
        var streams: [OpenStream] = []
        var trace: [String] = []
        var duplicatesRefused = 0
        var now = 0.0
        for step in 0..<2000 {
            now += 0.1
            let user = Self.users.randomElement(using: &rng)!
            let session = SessionKey(owner: user, clientSessionID: Self.sessionIDs.randomElement(using: &rng)!)
            let op = Self.operationIDs.randomElement(using: &rng)!
            let roll = Int.random(in: 0..<100, using: &rng)

            func finish(_ admitted: AdmittedCall, code: GRPCStatusCode, status: BackendStatus? = nil) {
                var outcome = CallOutcome(
                    summary: CallSummary(start: now, method: admitted.method.name, peer: "p"), code: code)
                outcome.backendStatus = status
                outcome.admitted = admitted
                ledger.callFinished(outcome, now: now)
            }
            func admit(_ method: SparkConnectMethod, op: String?, reattachable: Bool = true) -> AdmittedCall? {
                var call = CallAdmission(
                    caller: session.owner, method: method, clientSessionID: session.clientSessionID,
                    backendSessionID: session.clientSessionID, backend: "b")
                call.operationID = op
                call.reattachable = reattachable
                switch ledger.admit(call, quotas: quotas, rejectForeignSessions: false, now: now) {
                case .failure(let refusal):
                    if refusal.error.code == .alreadyExists { duplicatesRefused += 1 }
                    return nil
                case .success(let grant):
                    let key = op.map { OperationKey(session: session, operationID: $0) }
                    var admitted = AdmittedCall(
                        session: session, method: method, operation: key,
                        reattachable: reattachable || method == .reattachExecute, releaseAll: true,
                        releasedOperationID: op)
                    admitted.operationInstance = grant.operationInstance
                    return admitted
                }
            }

            if roll < 25 {
                // ExecutePlan: a new operation, or (a hostile or confused client) the id of one that runs.
                let reattachable = Bool.random(using: &rng)
                trace.append("\(step) execute \(session) \(op) reattachable=\(reattachable)")
                guard let admitted = admit(.executePlan, op: op, reattachable: reattachable) else { continue }
                if spark.running[session]?[op] != nil {
                    finish(
                        admitted, code: .internal,
                        status: BackendStatus(code: .internal, errorClass: "INVALID_HANDLE.OPERATION_ALREADY_EXISTS"))
                } else {
                    spark.running[session, default: [:]][op] = reattachable
                    streams.append(OpenStream(admitted: admitted, operation: op))
                }
            } else if roll < 40 {
                trace.append("\(step) reattach \(session) \(op)")
                guard let admitted = admit(.reattachExecute, op: op) else { continue }
                if spark.running[session]?[op] == true {
                    // The new stream takes the operation over: Spark ends the old one with INVALID_CURSOR.DISCONNECTED.
                    if let index = streams.firstIndex(where: { $0.admitted.session == session && $0.operation == op }) {
                        let old = streams.remove(at: index)
                        finish(
                            old.admitted, code: .internal,
                            status: BackendStatus(code: .internal, errorClass: "INVALID_CURSOR.DISCONNECTED"))
                    }
                    streams.append(OpenStream(admitted: admitted, operation: op))
                } else if spark.running[session]?[op] == false {
                    finish(
                        admitted, code: .internal,
                        status: BackendStatus(code: .internal, errorClass: "INVALID_CURSOR.NOT_REATTACHABLE"))
                } else {
                    finish(
                        admitted, code: .internal,
                        status: BackendStatus(code: .internal, errorClass: "INVALID_HANDLE.OPERATION_NOT_FOUND"))
                }
            } else if roll < 75, !streams.isEmpty {
                let index = Int.random(in: 0..<streams.count, using: &rng)
                var stream = streams.remove(at: index)
                let s = stream.admitted.session
                let reattachable = spark.running[s]?[stream.operation] ?? true
                switch Int.random(in: 0..<4, using: &rng) {
                case 0:
                    trace.append("\(step) complete \(s) \(stream.operation)")
                    spark.running[s]?[stream.operation] = nil
                    stream.admitted.sawResultComplete = true
                    finish(stream.admitted, code: .ok)
                case 1:
                    // Spark cuts a reattachable stream after senderMaxStreamDuration; the operation runs on.
                    guard reattachable else {
                        streams.append(stream)
                        continue
                    }
                    trace.append("\(step) cut \(s) \(stream.operation)")
                    finish(stream.admitted, code: .ok)
                case 2:
                    trace.append("\(step) cancel \(s) \(stream.operation)")
                    if !reattachable { spark.running[s]?[stream.operation] = nil }
                    finish(stream.admitted, code: .cancelled)
                default:
                    trace.append("\(step) fails \(s) \(stream.operation)")
                    spark.running[s]?[stream.operation] = nil
                    finish(
                        stream.admitted, code: .internal,
                        status: BackendStatus(code: .internal, errorClass: "DIVIDE_BY_ZERO"))
                }
            } else if roll < 83 {
                trace.append("\(step) interrupt \(session) \(op)")
                guard var admitted = admit(.interrupt, op: nil) else { continue }
                if spark.running[session]?.removeValue(forKey: op) != nil { admitted.interruptedIDs = [op] }
                finish(admitted, code: .ok)
                // Interrupted streams end with an error of their own.
                for stream in streams where stream.admitted.session == session && stream.operation == op {
                    finish(
                        stream.admitted, code: .internal,
                        status: BackendStatus(code: .internal, errorClass: "OPERATION_CANCELED"))
                }
                streams.removeAll { $0.admitted.session == session && $0.operation == op }
            } else if roll < 91 {
                trace.append("\(step) release_all \(session) \(op)")
                guard let admitted = admit(.releaseExecute, op: op) else { continue }
                spark.running[session]?[op] = nil
                finish(admitted, code: .ok)
            } else if roll < 95 {
                trace.append("\(step) release session \(session)")
                guard let admitted = admit(.releaseSession, op: nil) else { continue }
                spark.running[session] = nil
                finish(admitted, code: .ok)
                for stream in streams where stream.admitted.session == session {
                    finish(
                        stream.admitted, code: .internal,
                        status: BackendStatus(code: .internal, errorClass: "INVALID_HANDLE.SESSION_CLOSED"))
                }
                streams.removeAll { $0.admitted.session == session }
            } else {
                trace.append("\(step) config \(session)")
                guard let admitted = admit(.config, op: nil) else { continue }
                finish(admitted, code: .ok)
            }

            for s in Set(spark.running.keys).union(ledger.sessions.keys) where spark.count(s) > 0 {
                let counted = ledger.session(s)?.activeOperations ?? 0
                #expect(
                    counted >= spark.count(s),
                    "step \(step), seed \(seed): the ledger counts \(counted) operations in \(s), Spark runs \(spark.count(s))\n\(trace.suffix(30).joined(separator: "\n"))"
                )
                if counted < spark.count(s) { return }
            }
            for team in ["red", "blue"] where ledger.activeOperations(team: team) < spark.count(team: team) {
                Issue.record(
                    "step \(step), seed \(seed): team \(team) counted \(ledger.activeOperations(team: team)), Spark runs \(spark.count(team: team))"
                )
                return
            }
        }
        #expect(duplicatesRefused > 0, "the run never tried a running id again (seed \(seed))")
    }
}
