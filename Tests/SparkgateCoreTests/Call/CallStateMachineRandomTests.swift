import Foundation
import SparkgateCore
import SparkgateTestSupport
import Testing

/// Random event sequences, in any order, against the invariants every call keeps. The seed is printed so a
/// failure replays.
@Suite("Call state machine: random events")
struct CallStateMachineRandomTests {
    @Test(
        "whatever arrives in whatever order: one finish, window conserved, nothing sent after the end, no ledger leak")
    func invariants() {
        // SPARKGATE_SEED replays a printed seed.
        let seed =
            ProcessInfo.processInfo.environment["SPARKGATE_SEED"].flatMap { UInt64($0) }
            ?? UInt64.random(in: 0...UInt64.max)
        print("CallStateMachineRandomTests.invariants seed \(seed)")
        var rng = SplitMix64(seed: seed)
        for round in 0..<3000 {
            check(round: round, seed: seed, rng: &rng)
        }
    }

    private func check(round: Int, seed: UInt64, rng: inout SplitMix64) {
        let methods = ["Config", "ExecutePlan", "AddArtifacts", "AnalyzePlan", "ReattachExecute"]
        var d = CallDriver(method: methods[Int(rng.next() % UInt64(methods.count))])
        if rng.next() % 4 == 0 {
            // Sparkgate ended the operation a ReattachExecute resumes: the call is refused before its admission.
            let session = SessionKey(
                owner: UserKey(d.token.identity), clientSessionID: CallDriver.sessionID)
            d.endedOperations[OperationKey(session: session, operationID: CallDriver.operationID)] =
                SparkgateError(.cancelled, "ended by an operator")
        }
        var received = 0
        var returned = 0
        var finished = false
        var events: [String] = []
        var context: String { "round \(round), seed \(seed): \(events.joined(separator: " → "))" }
        for _ in 0..<Int(rng.next() % 40 + 1) {
            let event = randomEvent(&rng, driver: d)
            events.append("\(event)".prefix(60) + " [\(d.machine.phaseName)]")
            if case .requestData(let bytes, _) = event { received += bytes }
            let actions: [String]
            if case .admissionDecided = event {
                actions = d.admit()
            } else {
                actions = d.send(event)
            }
            for action in actions {
                if action.hasPrefix("returnRequestCredit(") {
                    returned += Int(action.dropFirst("returnRequestCredit(".count).prefix { $0.isNumber })!
                    continue
                }
                if finished {
                    // Only what concerns the backend, not the call: a stream to reset, an endpoint that failed.
                    #expect(
                        action == "resetBackend" || action.hasPrefix("recordEndpointFailure("),
                        "\(action) after the call finished (\(context))")
                }
                if action.hasPrefix("finish(") { finished = true }
            }
            #expect(returned <= received, "more window returned than received (\(context))")
        }
        #expect(d.finishes.count <= 1, "finished \(d.finishes.count) times (\(context))")
        // End whatever is left: the call must then be finished and every byte's window given back.
        if d.machine.phaseName == .admitting {
            for action in d.admit() where action.hasPrefix("returnRequestCredit(") {
                returned += Int(action.dropFirst("returnRequestCredit(".count).prefix { $0.isNumber })!
            }
        }
        for action in d.send(.clientGone) + (d.machine.phaseName == .closing ? d.admit() : [])
        where action.hasPrefix("returnRequestCredit(") {
            returned += Int(action.dropFirst("returnRequestCredit(".count).prefix { $0.isNumber })!
        }
        #expect(d.machine.phaseName == .closed, "\(context)")
        #expect(d.finishes.count == 1, "finished \(d.finishes.count) times (\(context))")
        #expect(returned == received, "window: received \(received), returned \(returned) (\(context))")
        for session in d.ledger.sessions.values {
            #expect(session.activeCalls == 0, "a call left active in the ledger (\(context))")
        }
    }

    private func randomEvent(_ rng: inout SplitMix64, driver d: CallDriver) -> CallDriver.Event {
        let bytes = Int(rng.next() % 70_000)
        let flag = rng.next() % 4 == 0
        switch rng.next() % 31 {
        case 0: return .requestHead(d.head, endStream: flag, bufferedBytes: 0)
        case 1: return .requestTrailers(endStream: flag)
        case 2, 3: return .requestData(bytes: bytes, endStream: flag)
        case 4: return .requestPrefix(length: bytes, compressed: rng.next() % 20 == 0)
        case 5:
            return .requestMessage(
                flag ? .failure(.truncated) : .success(d.envelope(operation: CallDriver.operationID)))
        case 6: return .requestsDrained(partialBytes: flag ? bytes : 0)
        case 7: return .requestFlushed(bytes: bytes)
        case 8: return rng.next() % 3 == 0 ? .clientGone : .drain
        case 9:
            return flag
                ? .authenticationFailed(AuthFailure(.expired, "expired")) : .authenticated(d.token, team: d.team)
        case 10: return .admissionDecided(.success(AdmissionGrant()))
        case 11: return .backendOpened
        case 12: return .backendOpenFailed(.unavailable("down"))
        case 13:
            return .responseHead(
                "h", httpStatus: flag ? "500" : "200", trailers: rng.next() % 3 == 0 ? BackendStatus(code: .ok) : nil)
        case 14: return .responseData(bytes: bytes, endStream: rng.next() % 10 == 0)
        case 15: return .responsePrefix(length: bytes, compressed: false)
        case 16: return .responseMessage(flag ? nil : ResponseEnvelope())
        case 17: return .responsesDrained(partialBytes: flag ? bytes : 0)
        case 18: return .responseTrailers("t", BackendStatus(code: flag ? .internal : .ok))
        case 19: return .responseFlushed(bytes: bytes)
        case 20: return .backendReset(flag ? .connectionLost : .refusedStream)
        case 21: return .deadlineExpired
        case 22: return .backendSessionLost(SparkgateError(.failedPrecondition, "engine gone"))
        case 23: return .unknownKey(AuthFailure(.unknownKey, "unknown key id 'k9'"), mayRefresh: flag)
        case 24: return .keysRefreshed
        case 25: return .artifactsCharged(flag ? QuotaRefusal(.artifactBytes, "too much") : nil)
        case 26: return .resultsCharged(flag ? QuotaRefusal(.resultBytes, "too much") : nil)
        case 27: return .backendStreamFailed(reason: "connection refused")
        case 28: return .placementRecorded(SessionPlacement(endpoint: CallDriver.endpoint))
        case 29: return .operationEndRecalled(flag ? SparkgateError(.cancelled, "ended") : nil)
        default: return .terminated(SparkgateError(.cancelled, "operator"), reason: "killed")
        }
    }
}
