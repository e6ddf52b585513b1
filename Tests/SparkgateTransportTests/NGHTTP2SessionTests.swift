import CNGHTTP2
import NIOCore
import NIOEmbedded
import NIOHPACK
import SparkgateTransport
import Testing

/// Two libnghttp2 sessions, a client and a server, wired to each other in memory: what one serializes the
/// other reads, and each tells a recorder what it heard.
@Suite("libnghttp2 sessions, in memory")
struct NGHTTP2SessionTests {
    final class Heard: NGHTTP2SessionDelegate {
        var events: [String] = []
        var headers: [Int32: [HPACKHeaders]] = [:]
        var goAway: (last: Int32, code: UInt32)?

        func session(_ session: NGHTTP2Session, headers: HPACKHeaders, on stream: Int32, endStream: Bool) {
            self.headers[stream, default: []].append(headers)
            events.append("headers \(stream)\(endStream ? " end" : "")")
        }
        func session(_ session: NGHTTP2Session, data: ByteBuffer, on stream: Int32, endStream: Bool) {
            events.append("data \(stream) \(data.readableBytes)\(endStream ? " end" : "")")
        }
        func session(_ session: NGHTTP2Session, reset stream: Int32, errorCode: UInt32) {
            events.append("reset \(stream) \(errorCode)")
        }
        func session(_ session: NGHTTP2Session, closed stream: Int32, errorCode: UInt32) {
            events.append("closed \(stream)")
        }
        func session(_ session: NGHTTP2Session, goAway lastStreamID: Int32, errorCode: UInt32) {
            goAway = (lastStreamID, errorCode)
            events.append("goaway \(errorCode)")
        }
        func sessionPingAcknowledged(_ session: NGHTTP2Session) { events.append("ping ack") }
    }

    static let settings = NGHTTP2Session.Settings(
        maxConcurrentStreams: 100, initialWindowSize: 1 << 20, maxFrameSize: 16 << 10, maxHeaderListSize: 16 << 10,
        connectionWindow: 65_535)
    static let request: HPACKHeaders = [
        ":method": "POST", ":scheme": "https", ":path": "/spark.connect.SparkConnectService/Config",
        ":authority": "localhost", "content-type": "application/grpc",
    ]

    let client: NGHTTP2Session
    let server: NGHTTP2Session
    let clientHeard = Heard()
    let serverHeard = Heard()

    init() throws {
        client = try NGHTTP2Session(role: .client, settings: Self.settings, allocator: ByteBufferAllocator())
        server = try NGHTTP2Session(role: .server, settings: Self.settings, allocator: ByteBufferAllocator())
        client.delegate = clientHeard
        server.delegate = serverHeard
    }

    /// Moves bytes both ways until neither side has more to send.
    func exchange() throws {
        for _ in 0..<10 {
            let toServer = try client.pendingOutput()
            if let toServer { try server.receive(toServer) }
            let toClient = try server.pendingOutput()
            if let toClient { try client.receive(toClient) }
            if toServer == nil && toClient == nil { return }
        }
    }

    @Test(
        "a trailers-only refusal followed by RST_STREAM(NO_ERROR) reaches the client whole: the reset waits for the status"
    )
    func refusalThenReset() throws {
        let stream = client.submitRequest(Self.request, endStream: false)
        try exchange()
        server.submitResponse(
            [":status": "200", "content-type": "application/grpc", "grpc-status": "16", "grpc-message": "no token"],
            on: stream, endStream: true)
        server.submitReset(stream, errorCode: 0)
        try exchange()
        #expect(clientHeard.headers[stream]?.last?.first(name: "grpc-status") == "16")
        let order = clientHeard.events.filter { $0.hasPrefix("headers \(stream)") || $0.hasPrefix("reset \(stream)") }
        #expect(order == ["headers \(stream) end", "reset \(stream) 0"], "\(clientHeard.events)")
    }

    @Test("header fields arrive exactly as sent: well-known ones, look-alikes of the same length, and others")
    func headerFieldsArriveAsSent() throws {
        var request = Self.request
        request.add(name: "grpc-accept-encoding", value: "identity,deflate,gzip")
        request.add(name: "grpc-accept-encodinh", value: "identity,deflate,gzip!")
        request.add(name: "x-look-alike", value: "/spark.connect.SparkConnectService/Confih")
        request.add(name: "x-other", value: "a value longer than fifteen bytes")
        request.add(name: "x-non-ascii", value: "application/grpć")
        let stream = client.submitRequest(request, endStream: true)
        try exchange()
        let received = try #require(serverHeard.headers[stream]?.first)
        #expect(received.map { "\($0.name): \($0.value)" } == request.map { "\($0.name): \($0.value)" })
    }

    @Test(
        "hundreds of responses in a row, each with a body, each arrive with their own bytes (stream queues are reused)")
    func reusedStreamQueues() throws {
        for round in 0..<300 {
            let stream = client.submitRequest(Self.request, endStream: true)
            try exchange()
            server.submitResponse([":status": "200"], on: stream, endStream: false)
            server.submitData(
                ByteBuffer(repeating: UInt8(round % 251), count: 100 + round), on: stream, endStream: false)
            server.submitTrailers(["grpc-status": "0"], on: stream)
            try exchange()
            let got = clientHeard.events.filter { $0.hasPrefix("data \(stream) ") }
            #expect(got == ["data \(stream) \(100 + round)"], "round \(round)")
            // The bytes left the client: the connection's window goes back, as the gateway gives it back.
            client.giveBack(100 + round, on: 0)
        }
    }

    @Test("a response with DATA then trailers arrives in order, and the DATA's promise completes once serialized")
    func responseWithBody() throws {
        let stream = client.submitRequest(Self.request, endStream: true)
        try exchange()
        server.submitResponse([":status": "200", "content-type": "application/grpc"], on: stream, endStream: false)
        let loop = EmbeddedEventLoop()
        let written = loop.makePromise(of: Void.self)
        server.submitData(
            ByteBuffer(repeating: 7, count: 40_000), on: stream, endStream: false, completion: .promise(written))
        server.submitTrailers(["grpc-status": "0"], on: stream)
        let out = try server.pendingOutput()
        var completions: [WriteCompletion] = []
        server.takeWrittenCompletions(into: &completions)
        for completion in completions { completion.complete(.success(())) }
        #expect(try written.futureResult.map { true }.wait())
        try client.receive(try #require(out))
        try exchange()
        let got = clientHeard.events.filter { $0.contains(" \(stream)") && !$0.hasPrefix("closed") }
        let bytes = got.filter { $0.hasPrefix("data") }.compactMap { Int($0.split(separator: " ")[2]) }.reduce(0, +)
        #expect(bytes == 40_000)
        #expect(got.first == "headers \(stream)")
        #expect(got.last == "headers \(stream) end")
    }

    @Test(
        "a header block that decodes past the header list limit stops decoding and ends the connection with ENHANCE_YOUR_CALM, saying why"
    )
    func headerBomb() throws {
        try exchange()
        var bomb = Self.request
        for i in 0..<40 { bomb.add(name: "x-field-\(i)", value: String(repeating: "v", count: 1_000)) }
        _ = client.submitRequest(bomb, endStream: true)
        let out = try #require(try client.pendingOutput())
        var failure: NGHTTP2Session.Failure?
        do { try server.receive(out) } catch { failure = error }
        let fatal = try #require(failure)
        try client.receive(server.finalOutput(after: fatal))
        #expect(clientHeard.goAway?.code == NGHTTP2_ENHANCE_YOUR_CALM.rawValue)
        #expect(serverHeard.headers.isEmpty)
    }

    @Test(
        "an answer decided after the client reset its stream is refused whole: nothing queued, nothing kept, its write failed"
    )
    func answerAfterReset() throws {
        final class Told: WriteListener {
            var times = 0
            func written(_ token: Int) { times += 1 }
        }
        let stream = client.submitRequest(Self.request, endStream: false)
        try exchange()
        #expect(server.isOpen(stream))
        client.submitReset(stream, errorCode: 8)
        try exchange()
        #expect(!server.isOpen(stream))
        let told = Told()
        #expect(!server.submitResponse([":status": "200"], on: stream, endStream: false))
        #expect(
            !server.submitData(
                ByteBuffer(bytes: [0, 0, 0, 0, 0]), on: stream, endStream: false,
                completion: .listener(told, token: 1)))
        server.submitTrailers(["grpc-status": "0"], on: stream)
        #expect(!server.submitResponse([":status": "200", "grpc-status": "16"], on: stream, endStream: true))
        server.submitReset(stream, errorCode: 0)
        #expect(server.trackedStreams.isEmpty)
        #expect(told.times == 1, "the write was not failed at once")
        let before = clientHeard.events.count
        try exchange()
        #expect(clientHeard.events.dropFirst(before).allSatisfy { !$0.hasPrefix("headers") }, "\(clientHeard.events)")
    }

    @Test("bytes that are not HTTP/2 get a GOAWAY(PROTOCOL_ERROR) though nghttp2 sends none for them")
    func badPreface() throws {
        var failure: NGHTTP2Session.Failure?
        do { try server.receive(ByteBuffer(string: "GET / HTTP/1.1\r\nHost: x\r\n\r\n")) } catch { failure = error }
        let fatal = try #require(failure)
        let out = server.finalOutput(after: fatal)
        // The last frame out is a GOAWAY: type 7 on stream 0, with PROTOCOL_ERROR.
        let bytes = Array(out.readableBytesView)
        var offset = 0
        var last: (type: UInt8, code: UInt32)?
        while offset + 9 <= bytes.count {
            let length = Int(bytes[offset]) << 16 | Int(bytes[offset + 1]) << 8 | Int(bytes[offset + 2])
            let type = bytes[offset + 3]
            let code = type == 7 ? bytes[(offset + 13)..<(offset + 17)].reduce(UInt32(0)) { $0 << 8 | UInt32($1) } : 0
            last = (type, code)
            offset += 9 + length
        }
        #expect(last?.type == 7)
        #expect(last?.code == NGHTTP2_PROTOCOL_ERROR.rawValue)
    }
}
