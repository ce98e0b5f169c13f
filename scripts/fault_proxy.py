"""A fault-injecting HTTP proxy on loopback, between the functions and moto.

Faults are set per AWS service (read from the request's SigV4 credential scope) through
`POST /__faults` with JSON such as
    {"dynamodb": ["throttle", "ok", "reset"], "sns": {"error500": 1.0}}
A list is a script, one entry per request, then everything passes ("ok" passes one); a
map gives a rate per kind (1.0 means every request). Kinds: throttle (HTTP 400 ThrottlingException), error500 (HTTP 500), denied
(HTTP 403 AccessDenied), timeout (hold the request, answer nothing), reset (close the
connection with RST).
`GET /__faults` returns what was injected and forwarded, by service and kind.

Usage: fault_proxy.py LISTEN_PORT UPSTREAM_URL [SEED]
"""

import http.client
import http.server
import json
import random
import socket
import struct
import sys
import threading
import time
import urllib.parse

KINDS = ("throttle", "error500", "denied", "timeout", "reset")
HOLD_SECONDS = 6.0

lock = threading.Lock()
rules = {}
counts = {}


def count(service, kind):
    with lock:
        counts.setdefault(service, {}).setdefault(kind, 0)
        counts[service][kind] += 1


def pick(service, rng):
    with lock:
        rule = rules.get(service, {})
        if isinstance(rule, list):
            kind = rule.pop(0) if rule else "ok"
            return None if kind == "ok" else kind
        for kind in KINDS:
            if rng.random() < float(rule.get(kind, 0)):
                return kind
    return None


class Proxy(http.server.BaseHTTPRequestHandler):
    protocol_version = "HTTP/1.1"
    upstream = None
    rng = random.Random(0)

    def log_message(self, *args):
        pass

    def _reply(self, status, body, content_type):
        data = body.encode()
        self.send_response(status)
        self.send_header("Content-Type", content_type)
        self.send_header("Content-Length", str(len(data)))
        self.end_headers()
        self.wfile.write(data)

    def _control(self, body):
        global rules
        if self.command == "POST":
            with lock:
                rules = json.loads(body or b"{}")
            self._reply(200, "{}", "application/json")
        else:
            with lock:
                snapshot = json.dumps(counts)
            self._reply(200, snapshot, "application/json")

    def _any(self):
        body = self.rfile.read(int(self.headers.get("Content-Length") or 0))
        if self.path.startswith("/__faults"):
            return self._control(body)
        auth = self.headers.get("Authorization", "")
        scope = auth.split("Credential=")[1].split(",")[0].split("/") if "Credential=" in auth else []
        service = scope[3] if len(scope) > 3 else "unsigned"
        kind = pick(service, self.rng)
        json_protocol = "X-Amz-Target" in self.headers or "json" in self.headers.get("Content-Type", "")
        if kind:
            count(service, kind)
        if kind == "throttle":
            if json_protocol:
                return self._reply(400, json.dumps({"__type": "ThrottlingException", "message": "Rate exceeded (injected)"}), "application/x-amz-json-1.0")
            return self._reply(400, "<ErrorResponse><Error><Type>Sender</Type><Code>Throttling</Code><Message>Rate exceeded (injected)</Message></Error><RequestId>fault</RequestId></ErrorResponse>", "text/xml")
        if kind == "error500":
            if json_protocol:
                return self._reply(500, json.dumps({"__type": "InternalServerError", "message": "injected"}), "application/x-amz-json-1.0")
            return self._reply(500, "<ErrorResponse><Error><Type>Receiver</Type><Code>InternalFailure</Code><Message>injected</Message></Error><RequestId>fault</RequestId></ErrorResponse>", "text/xml")
        if kind == "denied":
            if json_protocol:
                return self._reply(400, json.dumps({"__type": "AccessDeniedException", "message": "injected"}), "application/x-amz-json-1.0")
            return self._reply(403, "<ErrorResponse><Error><Type>Sender</Type><Code>AccessDenied</Code><Message>User is not authorized (injected)</Message></Error><RequestId>fault</RequestId></ErrorResponse>", "text/xml")
        if kind == "timeout":
            time.sleep(HOLD_SECONDS)
            self.close_connection = True
            return
        if kind == "reset":
            self.connection.setsockopt(socket.SOL_SOCKET, socket.SO_LINGER, struct.pack("ii", 1, 0))
            self.close_connection = True
            return
        count(service, "forwarded")
        conn = http.client.HTTPConnection(self.upstream.hostname, self.upstream.port, timeout=60)
        headers = {k: v for k, v in self.headers.items() if k.lower() not in ("connection", "content-length")}
        conn.request(self.command, self.path, body, headers)
        resp = conn.getresponse()
        data = resp.read()
        self.send_response(resp.status)
        for k, v in resp.getheaders():
            if k.lower() not in ("connection", "content-length", "transfer-encoding", "server", "date"):
                self.send_header(k, v)
        self.send_header("Content-Length", str(len(data)))
        self.end_headers()
        self.wfile.write(data)
        conn.close()

    do_GET = do_POST = do_PUT = do_DELETE = do_HEAD = _any


def main():
    port, upstream = int(sys.argv[1]), urllib.parse.urlparse(sys.argv[2])
    Proxy.upstream = upstream
    Proxy.rng = random.Random(int(sys.argv[3]) if len(sys.argv) > 3 else 0)
    server = http.server.ThreadingHTTPServer(("127.0.0.1", port), Proxy)
    server.daemon_threads = True
    server.serve_forever()


if __name__ == "__main__":
    main()
