extension CallStateMachine {
    /// Asks the ledger to admit the call.
    mutating func askAdmission(_ plan: AdmissionPlan, into actions: inout [Action]) {
        admissionAsked = true
        actions.append(.admit(plan))
    }

    /// Why Sparkgate ended a ReattachExecute's operation, if it did: the client is told that, not Spark's
    /// generic error; otherwise the call goes on to its admission.
    mutating func operationEndRecalled(_ reason: SparkgateError?, now: Double, into actions: inout [Action]) {
        switch phase {
        case .admitting(_, let plan) where !admissionAsked:
            guard let reason else { return askAdmission(plan, into: &actions) }
            refuse(CallRefusal(reason, reason: "operation_ended"), now: now, into: &actions)
        case .closing, .closed:
            break
        case .idle, .authenticating, .awaitingFirstMessage, .admitting, .connecting, .forwarding:
            impossible("an operation's end recalled", now: now, into: &actions)
        }
    }

    /// Hands an answer to the backend's opening and carries out its next step.
    mutating func advanceOpening(
        now: Double, into actions: inout [Action], _ answer: (inout BackendOpening) -> BackendOpening.Step
    ) {
        switch phase {
        case .connecting:
            guard opening != nil else { return impossible("a backend answer", now: now, into: &actions) }
            // Answered in place: a copy taken out and stored back would retain everything it holds twice.
            let step = answer(&opening!)
            take(step, now: now, into: &actions)
        case .closing, .closed:
            // Ended while the backend was found: there is no stream to open.
            break
        case .idle, .authenticating, .awaitingFirstMessage, .admitting, .forwarding:
            impossible("a backend answer", now: now, into: &actions)
        }
    }

    mutating func take(_ step: BackendOpening.Step, now: Double, into actions: inout [Action]) {
        switch step {
        case .readHealth(let backend, let endpoints):
            actions.append(.readBackendHealth(backend: backend, endpoints: endpoints))
        case .findEngine(let request):
            actions.append(.findEngine(request))
        case .recordPlacement(let record):
            actions.append(.recordPlacement(record))
        case .openStream(let request, let alongside):
            if let alongside { actions.append(.claimPlacement(alongside)) }
            actions.append(.openStream(request))
        case .fail(let error):
            backendOpenFailed(error, now: now, into: &actions)
        case .outOfOrder(let what):
            impossible(what, now: now, into: &actions)
        }
    }

    mutating func backendStreamFailed(reason: String, now: Double, into actions: inout [Action]) {
        switch phase {
        case .connecting, .closing, .closed:
            guard let opening, opening.stream != nil else {
                if isClosed { return }
                return impossible("a backend stream failing to open", now: now, into: &actions)
            }
            let (error, failure) = opening.streamFailed(reason: reason)
            // The endpoint failed whether or not the call still wants it.
            if let failure { actions.append(.recordEndpointFailure(failure)) }
            backendOpenFailed(error, now: now, into: &actions)
        case .idle, .authenticating, .awaitingFirstMessage, .admitting, .forwarding:
            impossible("a backend stream failing to open", now: now, into: &actions)
        }
    }
}
