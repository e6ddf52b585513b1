extension CallEvent {
    /// Each event without its payload, so that a table of events can be checked to name every one: a new case
    /// does not compile until it has a kind, and a test that enumerates `Kind.allCases` then misses it.
    public enum Kind: String, CaseIterable, Sendable {
        case requestHead, requestTrailers, requestData, requestPrefix, requestMessage, requestsDrained
        case requestFlushed, clientGone, authenticated, authenticationFailed, unknownKey, keysRefreshed
        case admissionDecided, artifactsCharged, resultsCharged, operationEndRecalled, backendHealthRead
        case placementRecorded, engineReady, backendOpened, backendOpenFailed, backendStreamFailed, backendSessionLost
        case responseHeaders, responseData, responsePrefix, responseMessage, responsesDrained, responseFlushed
        case backendReset, deadlineExpired, terminated, drain
    }

    public var kind: Kind {
        switch self {
        case .requestHead: .requestHead
        case .requestTrailers: .requestTrailers
        case .requestData: .requestData
        case .requestPrefix: .requestPrefix
        case .requestMessage: .requestMessage
        case .requestsDrained: .requestsDrained
        case .requestFlushed: .requestFlushed
        case .clientGone: .clientGone
        case .authenticated: .authenticated
        case .authenticationFailed: .authenticationFailed
        case .unknownKey: .unknownKey
        case .keysRefreshed: .keysRefreshed
        case .admissionDecided: .admissionDecided
        case .artifactsCharged: .artifactsCharged
        case .resultsCharged: .resultsCharged
        case .operationEndRecalled: .operationEndRecalled
        case .backendHealthRead: .backendHealthRead
        case .placementRecorded: .placementRecorded
        case .engineReady: .engineReady
        case .backendOpened: .backendOpened
        case .backendOpenFailed: .backendOpenFailed
        case .backendStreamFailed: .backendStreamFailed
        case .backendSessionLost: .backendSessionLost
        case .responseHeaders: .responseHeaders
        case .responseData: .responseData
        case .responsePrefix: .responsePrefix
        case .responseMessage: .responseMessage
        case .responsesDrained: .responsesDrained
        case .responseFlushed: .responseFlushed
        case .backendReset: .backendReset
        case .deadlineExpired: .deadlineExpired
        case .terminated: .terminated
        case .drain: .drain
        }
    }
}
