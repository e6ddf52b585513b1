"""A frame-level HTTP/2 client for the abuse tests: the `h2` state machine for well-formed traffic, and raw
`hyperframe`/`hpack` frames for what no well-behaved client sends."""
import socket
import ssl
import struct
import time

import h2.config
import h2.connection
import h2.events
import h2.settings
import hpack
import hyperframe.frame as hf

PREFACE = b"PRI * HTTP/2.0\r\n\r\nSM\r\n\r\n"


def grpc_frame(payload, compressed=False):
    return struct.pack(">BI", 1 if compressed else 0, len(payload)) + payload


def tls_socket(port, ca, timeout=10):
    ctx = ssl.create_default_context(cafile=ca)
    ctx.set_alpn_protocols(["h2"])
    raw = socket.create_connection(("127.0.0.1", port), timeout=timeout)
    return ctx.wrap_socket(raw, server_hostname="localhost")


class H2Client:
    """One HTTP/2 connection over TLS (or plaintext when `ca` is None)."""

    def __init__(self, port, ca, window=65_535, timeout=10, max_header_list=None):
        self.sock = tls_socket(port, ca, timeout) if ca else socket.create_connection(("127.0.0.1", port), timeout=timeout)
        config = h2.config.H2Configuration(client_side=True, header_encoding="utf-8", validate_outbound_headers=False,
                                           validate_inbound_headers=False, normalize_outbound_headers=False)
        self.conn = h2.connection.H2Connection(config=config)
        self.conn.local_settings = h2.settings.Settings(client=True, initial_values={
            h2.settings.SettingCodes.INITIAL_WINDOW_SIZE: window, h2.settings.SettingCodes.ENABLE_PUSH: 0})
        self.conn.initiate_connection()
        self.flush()
        self.streams = {}
        self.goaway = None
        self.closed = False

    def flush(self):
        data = self.conn.data_to_send()
        if data:
            self.sock.sendall(data)

    def send_raw(self, data):
        self.sock.sendall(data)

    def request(self, method, token=None, body=None, end=True, extra=(), path=None, flush=True):
        sid = self.conn.get_next_available_stream_id()
        headers = [(":method", "POST"), (":scheme", "https"), (":path", path or f"/spark.connect.SparkConnectService/{method}"),
                   (":authority", "localhost"), ("content-type", "application/grpc"), ("te", "trailers")]
        if token is not None:
            headers.append(("authorization", f"Bearer {token}"))
        headers += list(extra)
        self.conn.send_headers(sid, headers, end_stream=body is None and end)
        if body is not None:
            self.conn.send_data(sid, body, end_stream=end)
        if flush:
            self.flush()
        self.streams[sid] = {"headers": [], "data": b"", "ended": False, "reset": None}
        return sid

    def pump(self, seconds=5.0, until=None):
        """Reads what the gateway sends for up to `seconds`, or until `until()` is true."""
        deadline = time.time() + seconds
        self.sock.settimeout(0.2)
        while time.time() < deadline and not self.closed:
            if until and until():
                return True
            try:
                data = self.sock.recv(1 << 16)
            except (socket.timeout, ssl.SSLWantReadError):
                continue
            except (ConnectionError, ssl.SSLError, OSError):
                self.closed = True
                break
            if not data:
                self.closed = True
                break
            try:
                events = self.conn.receive_data(data)
            except Exception:
                self.closed = True
                break
            for e in events:
                s = self.streams.get(getattr(e, "stream_id", None))
                if isinstance(e, h2.events.ResponseReceived) or isinstance(e, h2.events.TrailersReceived):
                    if s is not None:
                        s["headers"].append(dict(e.headers))
                if isinstance(e, h2.events.DataReceived) and s is not None:
                    s["data"] += e.data
                if isinstance(e, h2.events.StreamEnded) and s is not None:
                    s["ended"] = True
                if isinstance(e, h2.events.StreamReset) and s is not None:
                    s["reset"] = e.error_code
                if isinstance(e, h2.events.ConnectionTerminated):
                    self.goaway = (e.error_code, e.additional_data)
            try:
                self.flush()
            except OSError:
                self.closed = True
        return until() if until else False

    def status(self, sid):
        """(grpc-status, grpc-message) of a finished stream, from its last header block."""
        s = self.streams[sid]
        if not s["headers"]:
            return None, None
        last = s["headers"][-1]
        from urllib.parse import unquote
        return last.get("grpc-status"), unquote(last.get("grpc-message", ""))

    def wait_status(self, sid, seconds=10):
        self.pump(seconds, until=lambda: self.streams[sid]["ended"] or self.streams[sid]["reset"] is not None or self.closed)
        return self.status(sid)

    def close(self):
        try:
            self.sock.close()
        except OSError:
            pass


def raw_headers_frame(stream_id, headers, end_stream=True, end_headers=True, encoder=None):
    encoder = encoder or hpack.Encoder()
    f = hf.HeadersFrame(stream_id)
    f.data = encoder.encode(headers)
    if end_stream:
        f.flags.add("END_STREAM")
    if end_headers:
        f.flags.add("END_HEADERS")
    return f.serialize()


def raw_settings_frame():
    return hf.SettingsFrame(0).serialize()


def read_frames(sock, seconds=3.0):
    """Reads raw HTTP/2 frames from a socket already past the preface until it closes or goes quiet;
    returns ([(type, flags, stream_id, payload)], closed)."""
    sock.settimeout(0.3)
    data, closed, deadline = b"", False, time.time() + seconds
    while time.time() < deadline:
        try:
            chunk = sock.recv(1 << 16)
        except (socket.timeout, ssl.SSLWantReadError):
            continue
        except OSError:
            closed = True
            break
        if not chunk:
            closed = True
            break
        data += chunk
    frames, pos = [], 0
    while pos + 9 <= len(data):
        length = int.from_bytes(data[pos:pos + 3], "big")
        frames.append((data[pos + 3], data[pos + 4], int.from_bytes(data[pos + 5:pos + 9], "big") & 0x7FFFFFFF, data[pos + 9:pos + 9 + length]))
        pos += 9 + length
    return frames, closed


GOAWAY = 0x7
RST_STREAM = 0x3
