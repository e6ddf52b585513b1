import CNGHTTP2
import NIOCore
import NIOHPACK

/// What an HTTP/2 session tells the connection it serves, in the order the peer's frames arrive.
package protocol NGHTTP2SessionDelegate: AnyObject {
    /// A complete header block (request head, response head or trailers) on `stream`.
    func session(_ session: NGHTTP2Session, headers: HPACKHeaders, on stream: Int32, endStream: Bool)
    /// DATA on `stream`: `data` is a slice of what was received, without a copy where possible.
    func session(_ session: NGHTTP2Session, data: ByteBuffer, on stream: Int32, endStream: Bool)
    /// The peer reset `stream` (RST_STREAM); `closed` follows.
    func session(_ session: NGHTTP2Session, reset stream: Int32, errorCode: UInt32)
    /// The stream is closed (both directions, or reset by either side); `errorCode` is 0 for a clean end.
    func session(_ session: NGHTTP2Session, closed stream: Int32, errorCode: UInt32)
    /// The peer sent GOAWAY: streams above `lastStreamID` were never processed.
    func session(_ session: NGHTTP2Session, goAway lastStreamID: Int32, errorCode: UInt32)
    /// The peer acknowledged a PING of ours.
    func sessionPingAcknowledged(_ session: NGHTTP2Session)
}

/// One HTTP/2 connection's protocol state on libnghttp2: frames parsed and serialized in C, HPACK, stream
/// states, flow-control accounting and the library's protections (rapid reset, CONTINUATION and SETTINGS
/// floods, header list limits). Bytes go in through `receive`, and out through `pendingOutput` once
/// submissions were made; nothing here does I/O, and one event loop owns it.
///
/// Flow control is the owner's: received DATA is not acknowledged until the owner gives the window back
/// (`giveBack`), as the bytes leave the gateway.
package final class NGHTTP2Session {
    package enum Role { case server, client }

    package struct Settings {
        package var maxConcurrentStreams: Int
        package var initialWindowSize: Int
        package var maxFrameSize: Int
        package var maxHeaderListSize: Int
        package var connectionWindow: Int

        package init(
            maxConcurrentStreams: Int, initialWindowSize: Int, maxFrameSize: Int, maxHeaderListSize: Int,
            connectionWindow: Int
        ) {
            self.maxConcurrentStreams = maxConcurrentStreams
            self.initialWindowSize = initialWindowSize
            self.maxFrameSize = maxFrameSize
            self.maxHeaderListSize = maxHeaderListSize
            self.connectionWindow = connectionWindow
        }
    }

    package struct Failure: Error, CustomStringConvertible {
        package var code: Int32
        package var description: String { "HTTP/2: " + String(cString: nghttp2_strerror(code)) }
    }

    /// What the owner queued on one stream, sent as the peer's window allows.
    final class Outbound {
        var buffers: [ByteBuffer] = []
        /// Completed once the matching buffer is serialized and written (`written`).
        var completions: [WriteCompletion?] = []
        var head = 0
        var ended = false
        var trailers: HPACKHeaders?
        var deferred = false

        var isEmpty: Bool { head == buffers.count }

        /// Ready for another stream, keeping its arrays' storage.
        func reset() {
            buffers.removeAll(keepingCapacity: true)
            completions.removeAll(keepingCapacity: true)
            head = 0
            ended = false
            trailers = nil
            deferred = false
        }
    }

    /// Queues of ended streams, reused so a stream's queue costs no allocation once the connection is warm.
    private var spareOutbound: [Outbound] = []

    package let role: Role
    package weak var delegate: (any NGHTTP2SessionDelegate)?
    private(set) var raw: OpaquePointer?
    private var outbound: [Int32: Outbound] = [:]
    /// Streams whose end (a trailers-only head) is queued but not yet sent.
    private var ending: Set<Int32> = []
    /// RST_STREAM(NO_ERROR) asked for while the stream's end was still queued: nghttp2 would close the stream
    /// at once and drop the end, so the reset follows it out instead (gRPC's "stop sending, here is the status").
    private var resetsAfterEnd: Set<Int32> = []
    private var goAwaySent = false
    private let maxHeaderListSize: Int
    /// The size of the header block being received so far (blocks are never interleaved).
    private var blockBytes = 0
    private var tooLargeBlock = false
    /// Header fields of the block being received (blocks are never interleaved).
    private var receiving = HPACKHeaders()
    /// Scratch for the name/value pairs handed to nghttp2 (which copies them): kept to spare an allocation
    /// per header block.
    private var nameValueBytes: [UInt8] = []
    private var nameValues: [nghttp2_nv] = []
    /// DATA received in the current `receive` call but not yet delivered: held until its frame is complete,
    /// so END_STREAM travels with it.
    private var heldData: [Int32: ByteBuffer] = [:]
    /// The buffer `receive` is reading, so DATA chunks are sliced from it rather than copied.
    private var input: ByteBuffer?
    private var inputBase: UnsafeRawPointer?
    /// What `pendingOutput` hands out next; allocated on the first byte, sized to what comes (a unary call's
    /// frames are a few hundred bytes, a stream's DATA up to the frame size).
    private(set) var output: ByteBuffer
    private var outputAllocated = false
    /// Completions of DATA serialized into `output`, completed when it is written.
    private var outputCompletions: [WriteCompletion] = []
    private let allocator: ByteBufferAllocator

    package init(role: Role, settings: Settings, allocator: ByteBufferAllocator) throws(Failure) {
        self.role = role
        self.allocator = allocator
        self.maxHeaderListSize = settings.maxHeaderListSize
        self.output = ByteBuffer()
        var callbacks: OpaquePointer?
        nghttp2_session_callbacks_new(&callbacks)
        defer { nghttp2_session_callbacks_del(callbacks) }
        nghttp2_session_callbacks_set_send_callback(callbacks, sendCallback)
        nghttp2_session_callbacks_set_send_data_callback(callbacks, sendDataCallback)
        nghttp2_session_callbacks_set_on_begin_headers_callback(callbacks, beginHeadersCallback)
        nghttp2_session_callbacks_set_on_header_callback(callbacks, headerCallback)
        nghttp2_session_callbacks_set_on_frame_recv_callback(callbacks, frameReceivedCallback)
        nghttp2_session_callbacks_set_on_data_chunk_recv_callback(callbacks, dataChunkCallback)
        nghttp2_session_callbacks_set_on_stream_close_callback(callbacks, streamClosedCallback)
        nghttp2_session_callbacks_set_on_frame_send_callback(callbacks, frameSentCallback)
        nghttp2_session_callbacks_set_data_source_read_length_callback(callbacks, readLengthCallback)
        var options: OpaquePointer?
        nghttp2_option_new(&options)
        defer { nghttp2_option_del(options) }
        // Window goes back as bytes leave the gateway, not as they arrive.
        nghttp2_option_set_no_auto_window_update(options, 1)
        nghttp2_option_set_max_send_header_block_length(options, max(64 << 10, settings.maxHeaderListSize))
        // Rapid reset: 200 RST_STREAMs at once, then about 7 a second (NIOHTTP2's 200 per 30 s), past which the
        // connection ends with GOAWAY. nghttp2's own default (1,000, then 33 a second) lets a peer cost more.
        nghttp2_option_set_stream_reset_rate_limit(options, 200, 7)
        let user = Unmanaged.passUnretained(self).toOpaque()
        var session: OpaquePointer?
        let created =
            role == .server
            ? nghttp2_session_server_new2(&session, callbacks, user, options)
            : nghttp2_session_client_new2(&session, callbacks, user, options)
        guard created == 0, let session else { throw Failure(code: created) }
        raw = session
        var entries = [
            nghttp2_settings_entry(
                settings_id: Int32(NGHTTP2_SETTINGS_MAX_CONCURRENT_STREAMS.rawValue),
                value: UInt32(settings.maxConcurrentStreams)),
            nghttp2_settings_entry(
                settings_id: Int32(NGHTTP2_SETTINGS_INITIAL_WINDOW_SIZE.rawValue),
                value: UInt32(settings.initialWindowSize)),
            nghttp2_settings_entry(
                settings_id: Int32(NGHTTP2_SETTINGS_MAX_FRAME_SIZE.rawValue), value: UInt32(settings.maxFrameSize)),
            nghttp2_settings_entry(
                settings_id: Int32(NGHTTP2_SETTINGS_MAX_HEADER_LIST_SIZE.rawValue),
                value: UInt32(settings.maxHeaderListSize)),
        ]
        if role == .client {
            entries.append(nghttp2_settings_entry(settings_id: Int32(NGHTTP2_SETTINGS_ENABLE_PUSH.rawValue), value: 0))
        }
        let submitted = nghttp2_submit_settings(session, UInt8(NGHTTP2_FLAG_NONE.rawValue), &entries, entries.count)
        guard submitted == 0 else { throw Failure(code: submitted) }
        if settings.connectionWindow > 65_535 {
            nghttp2_session_set_local_window_size(
                session, UInt8(NGHTTP2_FLAG_NONE.rawValue), 0, Int32(settings.connectionWindow))
        }
    }

    deinit {
        nghttp2_session_del(raw)
    }

    // MARK: Bytes in

    /// Reads bytes the peer sent; the delegate hears of every complete frame. Throws when the peer broke the
    /// protocol: a GOAWAY saying why is then queued, for the owner to send before it closes.
    package func receive(_ buffer: ByteBuffer) throws(Failure) {
        input = buffer
        defer {
            input = nil
            inputBase = nil
        }
        let consumed = buffer.withUnsafeReadableBytes { bytes -> Int in
            inputBase = bytes.baseAddress
            return nghttp2_session_mem_recv(raw, bytes.baseAddress?.assumingMemoryBound(to: UInt8.self), bytes.count)
        }
        flushHeldData()
        if consumed < 0 { throw Failure(code: Int32(consumed)) }
    }

    // MARK: Submissions

    /// A request's head; its body follows through `submitData` and ends there or with its head. Returns the
    /// stream id, or a negative nghttp2 error.
    package func submitRequest(_ headers: HPACKHeaders, endStream: Bool) -> Int32 {
        let stream = takeOutbound()
        stream.ended = endStream
        let id: Int32 = withNV(headers) { nva, count in
            if endStream { return nghttp2_submit_request(raw, nil, nva, count, nil, nil) }
            var provider = nghttp2_data_provider(source: nghttp2_data_source(ptr: nil), read_callback: readCallback)
            return nghttp2_submit_request(raw, nil, nva, count, &provider, nil)
        }
        if id > 0 && !endStream { outbound[id] = stream } else { spareOutbound.append(stream) }
        return id
    }

    /// A response's head; its messages follow through `submitData`, and `submitTrailers` ends it. A
    /// trailers-only response is a head with `endStream`. False when the stream is gone (the client reset it
    /// while the answer was being decided): nothing is queued and nothing is kept for it.
    @discardableResult
    package func submitResponse(_ headers: HPACKHeaders, on id: Int32, endStream: Bool) -> Bool {
        // nghttp2 accepts a response for a closed stream and drops it when sending: what Sparkgate kept for the
        // stream would then stay until the connection ends.
        guard isOpen(id) else { return false }
        if endStream { return submitEnd(headers, on: id) }
        return withNV(headers) { nva, count -> Bool in
            let stream = takeOutbound()
            var provider = nghttp2_data_provider(source: nghttp2_data_source(ptr: nil), read_callback: readCallback)
            guard nghttp2_submit_response(raw, id, nva, count, &provider) == 0 else {
                retire(stream)
                return false
            }
            outbound[id] = stream
            return true
        }
    }

    /// Headers that end the stream: a trailers-only response, or trailers where no body provider was set. The
    /// stream counts as ending until they are sent (a reset asked for meanwhile follows them).
    @discardableResult
    private func submitEnd(_ headers: HPACKHeaders, on id: Int32) -> Bool {
        let queued = withNV(headers) { nva, count in
            nghttp2_submit_headers(raw, UInt8(NGHTTP2_FLAG_END_STREAM.rawValue), id, nil, nva, count, nil)
        }
        if queued >= 0 { ending.insert(id) }
        return queued >= 0
    }

    /// Whether `id` is a stream nghttp2 still has open (on either side).
    package func isOpen(_ id: Int32) -> Bool {
        guard id > 0, let stream = nghttp2_session_find_stream(raw, id) else { return false }
        let state = nghttp2_stream_get_state(stream)
        return state != NGHTTP2_STREAM_STATE_CLOSED && state != NGHTTP2_STREAM_STATE_IDLE
    }

    /// The streams Sparkgate keeps anything for: queued DATA, an end or a reset waiting to go out, DATA held
    /// for its frame's end. Each must be a stream nghttp2 has not closed (checked by the fuzzer).
    package var trackedStreams: Set<Int32> {
        Set(outbound.keys).union(ending).union(resetsAfterEnd).union(heldData.keys)
    }

    /// Queues DATA on a stream whose head went out with a body; `completion` completes once it is written to
    /// the connection (or fails when the stream ends first). False when the stream takes no more DATA.
    @discardableResult
    package func submitData(
        _ data: ByteBuffer, on id: Int32, endStream: Bool, completion: WriteCompletion? = nil
    ) -> Bool {
        guard let stream = outbound[id], !stream.ended else {
            completion?.complete(.failure(ChannelError.ioOnClosedChannel))
            return false
        }
        if data.readableBytes > 0 || completion != nil {
            stream.buffers.append(data)
            stream.completions.append(completion)
        }
        if endStream { stream.ended = true }
        resume(id, stream)
        return true
    }

    /// Sends WINDOW_UPDATE: `bytes` more for the peer on `id` (0: the connection). Beyond what the peer sent
    /// and was not yet given back, the window grows.
    package func submitWindowUpdate(_ bytes: Int, on id: Int32) {
        guard bytes > 0 else { return }
        _ = nghttp2_submit_window_update(raw, UInt8(NGHTTP2_FLAG_NONE.rawValue), id, Int32(min(bytes, Int(Int32.max))))
    }

    /// The completions of the DATA in the last `pendingOutput`, to complete when it is written: swapped into
    /// `completions` when it is empty (so neither array is copied), appended to it otherwise.
    package func takeWrittenCompletions(into completions: inout [WriteCompletion]) {
        if completions.isEmpty {
            swap(&outputCompletions, &completions)
        } else {
            completions.append(contentsOf: outputCompletions)
            outputCompletions.removeAll(keepingCapacity: true)
        }
    }

    /// Ends a stream with trailers, after its queued DATA.
    package func submitTrailers(_ headers: HPACKHeaders, on id: Int32) {
        guard let stream = outbound[id], !stream.ended else {
            // A stream with no body provider (its head ended it): trailers go out as headers. A stream that is
            // gone gets nothing.
            if isOpen(id) { submitEnd(headers, on: id) }
            return
        }
        stream.trailers = headers
        stream.ended = true
        resume(id, stream)
    }

    private func resume(_ id: Int32, _ stream: Outbound) {
        if stream.deferred {
            stream.deferred = false
            nghttp2_session_resume_data(raw, id)
        }
    }

    package func submitReset(_ id: Int32, errorCode: UInt32) {
        if errorCode == NGHTTP2_NO_ERROR.rawValue && (ending.contains(id) || outbound[id]?.ended == true) {
            // Where the peer already ended its side, the stream's end closes it and no reset is needed.
            if nghttp2_session_get_stream_remote_close(raw, id) != 1 { resetsAfterEnd.insert(id) }
            return
        }
        dropOutbound(id)
        nghttp2_submit_rst_stream(raw, UInt8(NGHTTP2_FLAG_NONE.rawValue), id, errorCode)
    }

    /// Forgets what a stream still had to send; its completions fail.
    private func dropOutbound(_ id: Int32) {
        guard let stream = outbound.removeValue(forKey: id) else { return }
        for index in stream.head..<stream.completions.count {
            stream.completions[index]?.complete(.failure(ChannelError.ioOnClosedChannel))
        }
        retire(stream)
    }

    private func takeOutbound() -> Outbound {
        spareOutbound.popLast() ?? Outbound()
    }

    /// Ends `id`'s queue (sent in full) and keeps it for a later stream.
    private func finishOutbound(_ id: Int32) {
        if let stream = outbound.removeValue(forKey: id) { retire(stream) }
    }

    private func retire(_ stream: Outbound) {
        // As many as streams were open at once at most (bounded by SETTINGS_MAX_CONCURRENT_STREAMS's use).
        guard spareOutbound.count < 128 else { return }
        stream.reset()
        spareOutbound.append(stream)
    }

    /// Gives `bytes` of window back on `stream` (0: the connection), as received bytes leave the gateway.
    package func giveBack(_ bytes: Int, on id: Int32) {
        guard bytes > 0 else { return }
        if id == 0 {
            nghttp2_session_consume_connection(raw, bytes)
        } else {
            nghttp2_session_consume_stream(raw, id, bytes)
        }
    }

    /// Raises the window the peer has on the whole connection (beyond what it consumed).
    package func raiseConnectionWindow(to size: Int) {
        nghttp2_session_set_local_window_size(
            raw, UInt8(NGHTTP2_FLAG_NONE.rawValue), 0, Int32(min(size, Int(Int32.max))))
    }

    package func submitPing(_ data: UInt64) {
        var bytes = data.bigEndian
        withUnsafeBytes(of: &bytes) {
            _ = nghttp2_submit_ping(
                raw, UInt8(NGHTTP2_FLAG_NONE.rawValue), $0.baseAddress?.assumingMemoryBound(to: UInt8.self))
        }
    }

    package func submitGoAway(lastStreamID: Int32? = nil, errorCode: UInt32, debug: String = "") {
        let last = lastStreamID ?? nghttp2_session_get_last_proc_stream_id(raw)
        let text = Array(debug.utf8)
        text.withUnsafeBufferPointer { bytes in
            _ = nghttp2_submit_goaway(
                raw, UInt8(NGHTTP2_FLAG_NONE.rawValue), last, errorCode, bytes.isEmpty ? nil : bytes.baseAddress,
                bytes.count)
        }
    }

    /// The bytes to write to the peer now (nil when there are none): frames the submissions and received
    /// frames (SETTINGS and PING acknowledgements, WINDOW_UPDATE) produced, DATA as far as windows allow.
    package func pendingOutput() throws(Failure) -> ByteBuffer? {
        let sent = nghttp2_session_send(raw)
        if sent != 0 { throw Failure(code: sent) }
        guard output.readableBytes > 0 else { return nil }
        let out = output
        output = ByteBuffer()
        outputAllocated = false
        return out
    }

    /// The last bytes for a peer whose input was fatal to the session (a flood, a broken preface, CONTINUATION
    /// past the bound): what was queued, and a GOAWAY saying why when nghttp2 did not send one, so the
    /// peer learns the connection ended on purpose rather than retrying into the same wall.
    package func finalOutput(after failure: Failure) -> ByteBuffer {
        var out = (try? pendingOutput()) ?? output
        guard !goAwaySent else { return out }
        let code: nghttp2_error_code =
            switch failure.code {
            case _ where tooLargeBlock: NGHTTP2_ENHANCE_YOUR_CALM
            case NGHTTP2_ERR_FLOODED.rawValue, NGHTTP2_ERR_TOO_MANY_CONTINUATIONS.rawValue,
                NGHTTP2_ERR_TOO_MANY_SETTINGS.rawValue:
                NGHTTP2_ENHANCE_YOUR_CALM
            case NGHTTP2_ERR_HEADER_COMP.rawValue: NGHTTP2_COMPRESSION_ERROR
            default: NGHTTP2_PROTOCOL_ERROR
            }
        let reason =
            tooLargeBlock
            ? "a header list over \(maxHeaderListSize) bytes" : String(cString: nghttp2_strerror(failure.code))
        let debug = Array(reason.utf8)
        out.writeInteger(UInt32(8 + debug.count) << 8 | UInt32(NGHTTP2_GOAWAY.rawValue))
        out.writeInteger(UInt8(0))
        out.writeInteger(UInt32(0))
        out.writeInteger(UInt32(max(0, lastPeerStreamID)))
        out.writeInteger(UInt32(code.rawValue))
        out.writeBytes(debug)
        goAwaySent = true
        return out
    }

    /// Whether the session has nothing more to do: both sides said GOAWAY, or the session failed.
    package var isFinished: Bool { nghttp2_session_want_read(raw) == 0 && nghttp2_session_want_write(raw) == 0 }

    /// The highest stream id the peer opened (for GOAWAY).
    package var lastPeerStreamID: Int32 { nghttp2_session_get_last_proc_stream_id(raw) }

    /// How many more bytes the peer may send on the connection now.
    package var connectionWindow: Int { Int(nghttp2_session_get_local_window_size(raw)) }

    // MARK: Callback bodies

    fileprivate func beginHeaders(_ id: Int32) {
        blockBytes = 0
        receiving = Self.emptyBlock()
    }

    /// A block with room for a gRPC head's usual fields, so it is allocated once rather than grown field by field.
    private static func emptyBlock() -> HPACKHeaders {
        var block = HPACKHeaders()
        block.reserveCapacity(12)
        return block
    }

    /// False when the block passed the header list limit: decoding stops there (an HPACK bomb is a few KiB
    /// that decode to megabytes), and the connection ends.
    fileprivate func header(
        _ id: Int32, name: UnsafePointer<UInt8>, nameLength: Int, value: UnsafePointer<UInt8>, valueLength: Int
    ) -> Bool {
        // RFC 9113's measure: each field's name and value, and 32 bytes.
        blockBytes += nameLength + valueLength + 32
        if blockBytes > maxHeaderListSize {
            tooLargeBlock = true
            return false
        }
        let name = UnsafeBufferPointer(start: name, count: nameLength)
        let value = UnsafeBufferPointer(start: value, count: valueLength)
        receiving.add(
            name: WellKnownHeaders.name(name) ?? String(decoding: name, as: UTF8.self),
            value: WellKnownHeaders.value(value) ?? String(decoding: value, as: UTF8.self))
        return true
    }

    fileprivate func frameReceived(_ frame: UnsafePointer<nghttp2_frame>) {
        let hd = frame.pointee.hd
        let endStream = hd.flags & UInt8(NGHTTP2_FLAG_END_STREAM.rawValue) != 0
        switch UInt32(hd.type) {
        case NGHTTP2_HEADERS.rawValue:
            let fields = receiving
            receiving = HPACKHeaders()
            delegate?.session(self, headers: fields, on: hd.stream_id, endStream: endStream)
        case NGHTTP2_DATA.rawValue:
            let data = heldData.removeValue(forKey: hd.stream_id) ?? allocator.buffer(capacity: 0)
            if data.readableBytes > 0 || endStream {
                delegate?.session(self, data: data, on: hd.stream_id, endStream: endStream)
            }
        case NGHTTP2_RST_STREAM.rawValue:
            delegate?.session(self, reset: hd.stream_id, errorCode: frame.pointee.rst_stream.error_code)
        case NGHTTP2_GOAWAY.rawValue:
            delegate?.session(
                self, goAway: frame.pointee.goaway.last_stream_id, errorCode: frame.pointee.goaway.error_code)
        case NGHTTP2_PING.rawValue where hd.flags & UInt8(NGHTTP2_FLAG_ACK.rawValue) != 0:
            delegate?.sessionPingAcknowledged(self)
        default:
            break
        }
    }

    fileprivate func dataChunk(_ id: Int32, _ pointer: UnsafePointer<UInt8>, _ length: Int) {
        var chunk: ByteBuffer
        if let input, let base = inputBase, UnsafeRawPointer(pointer) >= base,
            UnsafeRawPointer(pointer) + length <= base + input.readableBytes
        {
            chunk = input.getSlice(at: input.readerIndex + (UnsafeRawPointer(pointer) - base), length: length)!
        } else {
            chunk = allocator.buffer(capacity: length)
            chunk.writeBytes(UnsafeRawBufferPointer(start: pointer, count: length))
        }
        if var held = heldData[id] {
            held.writeBuffer(&chunk)
            heldData[id] = held
        } else {
            heldData[id] = chunk
        }
    }

    /// DATA whose frame did not complete within one `receive` goes to the owner now, without END_STREAM.
    private func flushHeldData() {
        guard !heldData.isEmpty else { return }
        let held = heldData
        heldData.removeAll(keepingCapacity: true)
        for (id, data) in held { delegate?.session(self, data: data, on: id, endStream: false) }
    }

    /// A frame went out: where it ended a stream that was asked to be reset, the reset follows.
    fileprivate func frameSent(_ frame: UnsafePointer<nghttp2_frame>) {
        let hd = frame.pointee.hd
        if hd.type == UInt8(NGHTTP2_GOAWAY.rawValue) { goAwaySent = true }
        guard hd.flags & UInt8(NGHTTP2_FLAG_END_STREAM.rawValue) != 0 else { return }
        ending.remove(hd.stream_id)
        guard resetsAfterEnd.remove(hd.stream_id) != nil, nghttp2_session_find_stream(raw, hd.stream_id) != nil,
            nghttp2_session_get_stream_remote_close(raw, hd.stream_id) == 0
        else { return }
        nghttp2_submit_rst_stream(raw, UInt8(NGHTTP2_FLAG_NONE.rawValue), hd.stream_id, NGHTTP2_NO_ERROR.rawValue)
    }

    fileprivate func streamClosed(_ id: Int32, errorCode: UInt32) {
        ending.remove(id)
        resetsAfterEnd.remove(id)
        dropOutbound(id)
        if let data = heldData.removeValue(forKey: id) { delegate?.session(self, data: data, on: id, endStream: false) }
        delegate?.session(self, closed: id, errorCode: errorCode)
    }

    /// How much DATA to send on `id` now, at most `length`; defers the stream when nothing is queued.
    fileprivate func read(_ id: Int32, length: Int, flags: UnsafeMutablePointer<UInt32>) -> Int {
        guard let stream = outbound[id] else { return Int(NGHTTP2_ERR_TEMPORAL_CALLBACK_FAILURE.rawValue) }
        var available = 0
        var index = stream.head
        while index < stream.buffers.count && available < length {
            available += stream.buffers[index].readableBytes
            index += 1
        }
        let size = min(available, length)
        if size > 0 {
            flags.pointee |= NGHTTP2_DATA_FLAG_NO_COPY.rawValue
        }
        if size == 0 {
            // Empty buffers (completions of empty DATA) ahead: done with this read.
            while stream.head < stream.buffers.count {
                if let completion = stream.completions[stream.head] { outputCompletions.append(completion) }
                stream.completions[stream.head] = nil
                stream.head += 1
            }
        }
        if size == available && stream.ended {
            flags.pointee |= NGHTTP2_DATA_FLAG_EOF.rawValue
            if let trailers = stream.trailers {
                flags.pointee |= NGHTTP2_DATA_FLAG_NO_END_STREAM.rawValue
                withNV(trailers) { nva, count -> Void in _ = nghttp2_submit_trailer(raw, id, nva, count) }
            }
            if size == 0 { finishOutbound(id) }
            return size
        }
        if size == 0 {
            stream.deferred = true
            return Int(NGHTTP2_ERR_DEFERRED.rawValue)
        }
        return size
    }

    private func reserveOutput(_ bytes: Int) {
        guard !outputAllocated else { return }
        outputAllocated = true
        output = allocator.buffer(capacity: max(bytes, 1024))
    }

    /// Writes a DATA frame: its 9-byte header, then `length` bytes of the stream's queued buffers.
    fileprivate func sendData(
        _ frame: UnsafeMutablePointer<nghttp2_frame>, header: UnsafePointer<UInt8>, length: Int
    ) -> Int32 {
        let id = frame.pointee.hd.stream_id
        guard let stream = outbound[id] else { return NGHTTP2_ERR_CALLBACK_FAILURE.rawValue }
        reserveOutput(9 + length + Int(frame.pointee.data.padlen))
        output.writeBytes(UnsafeRawBufferPointer(start: header, count: 9))
        let padding = Int(frame.pointee.data.padlen)
        if padding > 0 { output.writeInteger(UInt8(padding - 1)) }
        var left = length
        while left > 0 && stream.head < stream.buffers.count {
            let take = min(left, stream.buffers[stream.head].readableBytes)
            var slice = stream.buffers[stream.head].readSlice(length: take)!
            output.writeBuffer(&slice)
            left -= take
            if stream.buffers[stream.head].readableBytes == 0 {
                stream.buffers[stream.head] = ByteBuffer()
                if let completion = stream.completions[stream.head] { outputCompletions.append(completion) }
                stream.completions[stream.head] = nil
                stream.head += 1
            }
        }
        // Empty buffers queued with a completion (an empty DATA frame's) complete with the frame they follow.
        while stream.head < stream.buffers.count && stream.buffers[stream.head].readableBytes == 0 {
            if let completion = stream.completions[stream.head] { outputCompletions.append(completion) }
            stream.completions[stream.head] = nil
            stream.head += 1
        }
        if padding > 1 { output.writeRepeatingByte(0, count: padding - 1) }
        if stream.isEmpty {
            stream.buffers.removeAll(keepingCapacity: true)
            stream.completions.removeAll(keepingCapacity: true)
            stream.head = 0
            if stream.ended && stream.trailers == nil
                && frame.pointee.hd.flags & UInt8(NGHTTP2_FLAG_END_STREAM.rawValue) != 0
            {
                finishOutbound(id)
            }
        }
        return 0
    }

    fileprivate func send(_ data: UnsafePointer<UInt8>, _ length: Int) {
        reserveOutput(length)
        output.writeBytes(UnsafeRawBufferPointer(start: data, count: length))
    }

    /// Calls `body` with the header fields as nghttp2 name/value pairs over one contiguous copy of the bytes
    /// (nghttp2 copies them again into its own frame); the scratch storage is the session's, reused.
    func withNV<R>(_ headers: HPACKHeaders, _ body: (UnsafePointer<nghttp2_nv>, Int) -> R) -> R {
        nameValueBytes.removeAll(keepingCapacity: true)
        for (name, value, _) in headers {
            nameValueBytes.append(contentsOf: name.utf8)
            nameValueBytes.append(contentsOf: value.utf8)
        }
        return nameValueBytes.withUnsafeMutableBufferPointer { storage in
            nameValues.removeAll(keepingCapacity: true)
            var offset = 0
            for (name, value, _) in headers {
                let n = name.utf8.count
                let v = value.utf8.count
                nameValues.append(
                    nghttp2_nv(
                        name: storage.baseAddress! + offset, value: storage.baseAddress! + offset + n, namelen: n,
                        valuelen: v,
                        flags: UInt8(NGHTTP2_NV_FLAG_NONE.rawValue)))
                offset += n + v
            }
            return nameValues.withUnsafeBufferPointer { body($0.baseAddress!, $0.count) }
        }
    }
}

// MARK: The C callbacks, forwarding to the session named by their user data.

private func owner(_ user: UnsafeMutableRawPointer?) -> NGHTTP2Session {
    Unmanaged<NGHTTP2Session>.fromOpaque(user!).takeUnretainedValue()
}

private let sendCallback: nghttp2_send_callback = { _, data, length, _, user in
    owner(user).send(data!, length)
    return length
}

private let sendDataCallback: nghttp2_send_data_callback = { _, frame, header, length, _, user in
    owner(user).sendData(frame!, header: header!, length: length)
}

private let readCallback: nghttp2_data_source_read_callback = { _, stream, _, length, flags, _, user in
    owner(user).read(stream, length: length, flags: flags!)
}

private let beginHeadersCallback: nghttp2_on_begin_headers_callback = { _, frame, user in
    owner(user).beginHeaders(frame!.pointee.hd.stream_id)
    return 0
}

private let headerCallback: nghttp2_on_header_callback = { _, frame, name, nameLength, value, valueLength, _, user in
    owner(user).header(
        frame!.pointee.hd.stream_id, name: name!, nameLength: nameLength, value: value!, valueLength: valueLength)
        ? 0 : NGHTTP2_ERR_CALLBACK_FAILURE.rawValue
}

private let frameReceivedCallback: nghttp2_on_frame_recv_callback = { _, frame, user in
    owner(user).frameReceived(frame!)
    return 0
}

private let dataChunkCallback: nghttp2_on_data_chunk_recv_callback = { _, _, stream, data, length, user in
    owner(user).dataChunk(stream, data!, length)
    return 0
}

/// DATA frames as large as the windows and the peer's frame size allow (nghttp2's default is 16 KiB).
private let readLengthCallback: nghttp2_data_source_read_length_callback = {
    _, _, _, sessionWindow, streamWindow, maxFrame, _ in
    max(1, min(Int(sessionWindow), Int(streamWindow), Int(maxFrame)))
}

private let streamClosedCallback: nghttp2_on_stream_close_callback = { _, stream, errorCode, user in
    owner(user).streamClosed(stream, errorCode: errorCode)
    return 0
}

private let frameSentCallback: nghttp2_on_frame_send_callback = { _, frame, user in
    owner(user).frameSent(frame!)
    return 0
}
