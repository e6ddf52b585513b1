import CNGHTTP2
import NIOCore

/// What an HTTP/2 session tells the connection it serves, in the order the peer's frames arrive.
package protocol NGHTTP2SessionDelegate: AnyObject {
    /// A complete header block (request head, response head or trailers) on `stream`.
    func session(_ session: NGHTTP2Session, headers: [(name: String, value: String)], on stream: Int32, endStream: Bool)
    /// DATA on `stream`: `data` is a slice of what was received, without a copy where possible.
    func session(_ session: NGHTTP2Session, data: ByteBuffer, on stream: Int32, endStream: Bool)
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

        package init(maxConcurrentStreams: Int, initialWindowSize: Int, maxFrameSize: Int, maxHeaderListSize: Int, connectionWindow: Int) {
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
        var head = 0
        var ended = false
        var trailers: [(name: String, value: String)]?
        var deferred = false

        var isEmpty: Bool { head == buffers.count }
    }

    package let role: Role
    package weak var delegate: (any NGHTTP2SessionDelegate)?
    private(set) var raw: OpaquePointer?
    private var outbound: [Int32: Outbound] = [:]
    /// Header fields of the block being received, per stream.
    private var receiving: [Int32: [(name: String, value: String)]] = [:]
    /// DATA received in the current `receive` call but not yet delivered: held until its frame is complete,
    /// so END_STREAM travels with it.
    private var heldData: [Int32: ByteBuffer] = [:]
    /// The buffer `receive` is reading, so DATA chunks are sliced from it rather than copied.
    private var input: ByteBuffer?
    private var inputBase: UnsafeRawPointer?
    private(set) var output: ByteBuffer
    private let allocator: ByteBufferAllocator

    package init(role: Role, settings: Settings, allocator: ByteBufferAllocator) throws(Failure) {
        self.role = role
        self.allocator = allocator
        self.output = allocator.buffer(capacity: 16 << 10)
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
        nghttp2_session_callbacks_set_data_source_read_length_callback(callbacks, readLengthCallback)
        var options: OpaquePointer?
        nghttp2_option_new(&options)
        defer { nghttp2_option_del(options) }
        // Window goes back as bytes leave the gateway, not as they arrive.
        nghttp2_option_set_no_auto_window_update(options, 1)
        nghttp2_option_set_max_send_header_block_length(options, max(64 << 10, settings.maxHeaderListSize))
        let user = Unmanaged.passUnretained(self).toOpaque()
        var session: OpaquePointer?
        let created = role == .server
            ? nghttp2_session_server_new2(&session, callbacks, user, options) : nghttp2_session_client_new2(&session, callbacks, user, options)
        guard created == 0, let session else { throw Failure(code: created) }
        raw = session
        var entries = [
            nghttp2_settings_entry(settings_id: Int32(NGHTTP2_SETTINGS_MAX_CONCURRENT_STREAMS.rawValue), value: UInt32(settings.maxConcurrentStreams)),
            nghttp2_settings_entry(settings_id: Int32(NGHTTP2_SETTINGS_INITIAL_WINDOW_SIZE.rawValue), value: UInt32(settings.initialWindowSize)),
            nghttp2_settings_entry(settings_id: Int32(NGHTTP2_SETTINGS_MAX_FRAME_SIZE.rawValue), value: UInt32(settings.maxFrameSize)),
            nghttp2_settings_entry(settings_id: Int32(NGHTTP2_SETTINGS_MAX_HEADER_LIST_SIZE.rawValue), value: UInt32(settings.maxHeaderListSize)),
        ]
        if role == .client {
            entries.append(nghttp2_settings_entry(settings_id: Int32(NGHTTP2_SETTINGS_ENABLE_PUSH.rawValue), value: 0))
        }
        let submitted = nghttp2_submit_settings(session, UInt8(NGHTTP2_FLAG_NONE.rawValue), &entries, entries.count)
        guard submitted == 0 else { throw Failure(code: submitted) }
        if settings.connectionWindow > 65_535 {
            nghttp2_session_set_local_window_size(session, UInt8(NGHTTP2_FLAG_NONE.rawValue), 0, Int32(settings.connectionWindow))
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
    package func submitRequest(_ headers: [(name: String, value: String)], endStream: Bool) -> Int32 {
        let stream = Outbound()
        stream.ended = endStream
        let id: Int32 = Self.withNV(headers) { nva, count in
            if endStream { return nghttp2_submit_request(raw, nil, nva, count, nil, nil) }
            var provider = nghttp2_data_provider(source: nghttp2_data_source(ptr: nil), read_callback: readCallback)
            return nghttp2_submit_request(raw, nil, nva, count, &provider, nil)
        }
        if id > 0 && !endStream { outbound[id] = stream }
        return id
    }

    /// A response's head; its messages follow through `submitData`, and `submitTrailers` ends it. A
    /// trailers-only response is a head with `endStream`.
    package func submitResponse(_ headers: [(name: String, value: String)], on id: Int32, endStream: Bool) {
        Self.withNV(headers) { nva, count -> Void in
            if endStream {
                _ = nghttp2_submit_headers(raw, UInt8(NGHTTP2_FLAG_END_STREAM.rawValue), id, nil, nva, count, nil)
                return
            }
            let stream = Outbound()
            outbound[id] = stream
            var provider = nghttp2_data_provider(source: nghttp2_data_source(ptr: nil), read_callback: readCallback)
            _ = nghttp2_submit_response(raw, id, nva, count, &provider)
        }
    }

    /// Queues DATA on a stream whose head went out with a body.
    package func submitData(_ data: ByteBuffer, on id: Int32, endStream: Bool) {
        guard let stream = outbound[id], !stream.ended else { return }
        if data.readableBytes > 0 { stream.buffers.append(data) }
        if endStream { stream.ended = true }
        resume(id, stream)
    }

    /// Ends a stream with trailers, after its queued DATA.
    package func submitTrailers(_ headers: [(name: String, value: String)], on id: Int32) {
        guard let stream = outbound[id], !stream.ended else {
            // A stream with no body provider (its head ended it, or it is gone): trailers go out as headers.
            Self.withNV(headers) { nva, count -> Void in _ = nghttp2_submit_headers(raw, UInt8(NGHTTP2_FLAG_END_STREAM.rawValue), id, nil, nva, count, nil) }
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
        outbound[id] = nil
        nghttp2_submit_rst_stream(raw, UInt8(NGHTTP2_FLAG_NONE.rawValue), id, errorCode)
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
        nghttp2_session_set_local_window_size(raw, UInt8(NGHTTP2_FLAG_NONE.rawValue), 0, Int32(min(size, Int(Int32.max))))
    }

    package func submitPing(_ data: UInt64) {
        var bytes = data.bigEndian
        withUnsafeBytes(of: &bytes) { _ = nghttp2_submit_ping(raw, UInt8(NGHTTP2_FLAG_NONE.rawValue), $0.baseAddress?.assumingMemoryBound(to: UInt8.self)) }
    }

    package func submitGoAway(lastStreamID: Int32? = nil, errorCode: UInt32, debug: String = "") {
        let last = lastStreamID ?? nghttp2_session_get_last_proc_stream_id(raw)
        var text = Array(debug.utf8)
        _ = nghttp2_submit_goaway(raw, UInt8(NGHTTP2_FLAG_NONE.rawValue), last, errorCode, &text, text.count)
    }

    /// The bytes to write to the peer now (nil when there are none): frames the submissions and received
    /// frames (SETTINGS and PING acknowledgements, WINDOW_UPDATE) produced, DATA as far as windows allow.
    package func pendingOutput() throws(Failure) -> ByteBuffer? {
        let sent = nghttp2_session_send(raw)
        if sent != 0 { throw Failure(code: sent) }
        guard output.readableBytes > 0 else { return nil }
        let out = output
        output = allocator.buffer(capacity: 16 << 10)
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
        receiving[id] = []
    }

    fileprivate func header(_ id: Int32, name: UnsafePointer<UInt8>, nameLength: Int, value: UnsafePointer<UInt8>, valueLength: Int) {
        let field = (String(decoding: UnsafeBufferPointer(start: name, count: nameLength), as: UTF8.self),
                     String(decoding: UnsafeBufferPointer(start: value, count: valueLength), as: UTF8.self))
        receiving[id, default: []].append(field)
    }

    fileprivate func frameReceived(_ frame: UnsafePointer<nghttp2_frame>) {
        let hd = frame.pointee.hd
        let endStream = hd.flags & UInt8(NGHTTP2_FLAG_END_STREAM.rawValue) != 0
        switch UInt32(hd.type) {
        case NGHTTP2_HEADERS.rawValue:
            let fields = receiving.removeValue(forKey: hd.stream_id) ?? []
            delegate?.session(self, headers: fields, on: hd.stream_id, endStream: endStream)
        case NGHTTP2_DATA.rawValue:
            let data = heldData.removeValue(forKey: hd.stream_id) ?? allocator.buffer(capacity: 0)
            if data.readableBytes > 0 || endStream { delegate?.session(self, data: data, on: hd.stream_id, endStream: endStream) }
        case NGHTTP2_GOAWAY.rawValue:
            delegate?.session(self, goAway: frame.pointee.goaway.last_stream_id, errorCode: frame.pointee.goaway.error_code)
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

    fileprivate func streamClosed(_ id: Int32, errorCode: UInt32) {
        outbound[id] = nil
        receiving[id] = nil
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
        if size == available && stream.ended {
            flags.pointee |= NGHTTP2_DATA_FLAG_EOF.rawValue
            if let trailers = stream.trailers {
                flags.pointee |= NGHTTP2_DATA_FLAG_NO_END_STREAM.rawValue
                Self.withNV(trailers) { nva, count -> Void in _ = nghttp2_submit_trailer(raw, id, nva, count) }
            }
            if size == 0 { outbound[id] = nil }
            return size
        }
        if size == 0 {
            stream.deferred = true
            return Int(NGHTTP2_ERR_DEFERRED.rawValue)
        }
        return size
    }

    /// Writes a DATA frame: its 9-byte header, then `length` bytes of the stream's queued buffers.
    fileprivate func sendData(_ frame: UnsafeMutablePointer<nghttp2_frame>, header: UnsafePointer<UInt8>, length: Int) -> Int32 {
        let id = frame.pointee.hd.stream_id
        guard let stream = outbound[id] else { return NGHTTP2_ERR_CALLBACK_FAILURE.rawValue }
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
                stream.head += 1
            }
        }
        if padding > 1 { output.writeRepeatingByte(0, count: padding - 1) }
        if stream.isEmpty {
            stream.buffers.removeAll(keepingCapacity: true)
            stream.head = 0
            if stream.ended && stream.trailers == nil && frame.pointee.hd.flags & UInt8(NGHTTP2_FLAG_END_STREAM.rawValue) != 0 { outbound[id] = nil }
        }
        return 0
    }

    fileprivate func send(_ data: UnsafePointer<UInt8>, _ length: Int) {
        output.writeBytes(UnsafeRawBufferPointer(start: data, count: length))
    }

    /// Calls `body` with the header fields as nghttp2 name/value pairs over one contiguous copy of the bytes
    /// (nghttp2 copies them again into its own frame).
    static func withNV<R>(_ headers: [(name: String, value: String)], _ body: (UnsafePointer<nghttp2_nv>, Int) -> R) -> R {
        var bytes: [UInt8] = []
        bytes.reserveCapacity(headers.reduce(0) { $0 + $1.name.utf8.count + $1.value.utf8.count })
        for (name, value) in headers {
            bytes.append(contentsOf: name.utf8)
            bytes.append(contentsOf: value.utf8)
        }
        return bytes.withUnsafeMutableBufferPointer { storage in
            var offset = 0
            var nva: [nghttp2_nv] = []
            nva.reserveCapacity(headers.count)
            for (name, value) in headers {
                let n = name.utf8.count
                let v = value.utf8.count
                nva.append(nghttp2_nv(
                    name: storage.baseAddress! + offset, value: storage.baseAddress! + offset + n, namelen: n, valuelen: v,
                    flags: UInt8(NGHTTP2_NV_FLAG_NONE.rawValue)))
                offset += n + v
            }
            return nva.withUnsafeBufferPointer { body($0.baseAddress!, $0.count) }
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
    owner(user).header(frame!.pointee.hd.stream_id, name: name!, nameLength: nameLength, value: value!, valueLength: valueLength)
    return 0
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
private let readLengthCallback: nghttp2_data_source_read_length_callback = { _, _, _, sessionWindow, streamWindow, maxFrame, _ in
    max(1, min(Int(sessionWindow), Int(streamWindow), Int(maxFrame)))
}

private let streamClosedCallback: nghttp2_on_stream_close_callback = { _, stream, errorCode, user in
    owner(user).streamClosed(stream, errorCode: errorCode)
    return 0
}
