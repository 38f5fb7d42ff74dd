#!/usr/bin/env python3
"""A stand-in push service for the WebPush tests, written against independent code.

It plays both the browser and the push service: `POST /subscribe` makes a subscription
(a P-256 key pair and an auth secret, as a browser would) and returns its JSON; a push to
`/push/<id>` must carry a valid VAPID header (RFC 8292: ES256 JWT whose `aud` is this
origin, checked here with `cryptography`) and an aes128gcm body (RFC 8291), which is
decrypted with `http_ece` (the reference implementation's Python package). What arrived is
listed by `GET /received/<id>`. `POST /mode/<id>` makes a subscription answer 410 (gone),
fail N times with 503 (`retry_after` adds a `Retry-After` header), or hang, to test cleanup
and retries.

Prints `PORT <n>` on its first line, then serves until killed.
"""
import base64
import json
import sys
import threading
import time
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer

import http_ece
from cryptography.hazmat.primitives import hashes, serialization
from cryptography.hazmat.primitives.asymmetric import ec
from cryptography.hazmat.primitives.asymmetric.utils import encode_dss_signature

LOCK = threading.Lock()
SUBS = {}
NEXT = [1]


def b64u(data):
    return base64.urlsafe_b64encode(data).rstrip(b"=").decode()


def unb64u(text):
    return base64.urlsafe_b64decode(text + "=" * (-len(text) % 4))


def verify_vapid(header, origin):
    """Returns the VAPID public key (base64url) or raises ValueError."""
    if not header or not header.startswith("vapid "):
        raise ValueError("no vapid authorization")
    params = {}
    for part in header[len("vapid "):].split(","):
        key, _, value = part.strip().partition("=")
        params[key] = value
    token, k = params.get("t"), params.get("k")
    if not token or not k:
        raise ValueError("vapid header lacks t or k")
    head_b64, claims_b64, sig_b64 = token.split(".")
    head = json.loads(unb64u(head_b64))
    claims = json.loads(unb64u(claims_b64))
    if head.get("alg") != "ES256":
        raise ValueError("alg is not ES256")
    if claims.get("aud") != origin:
        raise ValueError(f"aud {claims.get('aud')!r} is not {origin!r}")
    now = time.time()
    if not now < claims.get("exp", 0) <= now + 24 * 3600:
        raise ValueError("exp is not within the next 24 h")
    sub = claims.get("sub", "")
    if not (sub.startswith("mailto:") or sub.startswith("https://")):
        raise ValueError("sub is not mailto: or https:")
    public = ec.EllipticCurvePublicKey.from_encoded_point(ec.SECP256R1(), unb64u(k))
    sig = unb64u(sig_b64)
    if len(sig) != 64:
        raise ValueError("signature is not 64 bytes")
    der = encode_dss_signature(int.from_bytes(sig[:32], "big"), int.from_bytes(sig[32:], "big"))
    public.verify(der, f"{head_b64}.{claims_b64}".encode(), ec.ECDSA(hashes.SHA256()))
    return k


class Handler(BaseHTTPRequestHandler):
    def log_message(self, *args):
        pass

    def reply(self, status, body=None, headers=None):
        data = json.dumps(body).encode() if body is not None else b""
        self.send_response(status)
        for name, value in (headers or {}).items():
            self.send_header(name, value)
        self.send_header("Content-Type", "application/json")
        self.send_header("Content-Length", str(len(data)))
        self.end_headers()
        self.wfile.write(data)

    def body(self):
        return self.rfile.read(int(self.headers.get("Content-Length") or 0))

    def do_GET(self):
        if self.path.startswith("/received/"):
            with LOCK:
                sub = SUBS.get(self.path.rsplit("/", 1)[1])
                if sub is None:
                    return self.reply(404, {})
                return self.reply(200, {
                    "received": sub["received"],
                    "attempts": sub["attempts"],
                    "errors": sub["errors"],
                })
        self.reply(404, {})

    def do_POST(self):
        origin = f"http://{self.headers.get('Host')}"
        if self.path == "/subscribe":
            self.body()
            private = ec.generate_private_key(ec.SECP256R1())
            public = private.public_key().public_bytes(
                serialization.Encoding.X962, serialization.PublicFormat.UncompressedPoint)
            auth = bytes(__import__("os").urandom(16))
            with LOCK:
                sid = str(NEXT[0])
                NEXT[0] += 1
                SUBS[sid] = {"private": private, "auth": auth, "mode": {}, "received": [],
                             "attempts": 0, "errors": []}
            return self.reply(200, {"endpoint": f"{origin}/push/{sid}", "expirationTime": None,
                                    "keys": {"p256dh": b64u(public), "auth": b64u(auth)}, "id": sid})
        if self.path.startswith("/mode/"):
            mode = json.loads(self.body() or b"{}")
            with LOCK:
                SUBS[self.path.rsplit("/", 1)[1]]["mode"] = mode
            return self.reply(200, {})
        if self.path.startswith("/push/"):
            content = self.body()
            sid = self.path.rsplit("/", 1)[1]
            with LOCK:
                sub = SUBS.get(sid)
                if sub is None:
                    return self.reply(404, {})
                sub["attempts"] += 1
                mode = dict(sub["mode"])
                if mode.get("fail", 0) > 0:
                    sub["mode"]["fail"] = mode["fail"] - 1
            if mode.get("hang"):
                time.sleep(mode["hang"])
            if mode.get("status") and (mode.get("fail") is None or mode.get("fail", 0) > 0):
                headers = {}
                if mode.get("retry_after") is not None:
                    headers["Retry-After"] = str(mode["retry_after"])
                return self.reply(int(mode["status"]), {}, headers)
            try:
                vapid_key = verify_vapid(self.headers.get("Authorization"), origin)
                if self.headers.get("Content-Encoding") != "aes128gcm":
                    raise ValueError("Content-Encoding is not aes128gcm")
                ttl = int(self.headers["TTL"])
                plain = http_ece.decrypt(content, private_key=sub["private"],
                                         auth_secret=sub["auth"], version="aes128gcm")
                payload = json.loads(plain)
            except Exception as err:  # the server under test sent something wrong
                with LOCK:
                    sub["errors"].append(f"{type(err).__name__}: {err}")
                return self.reply(400, {"error": str(err)})
            with LOCK:
                sub["received"].append({"payload": payload, "ttl": ttl,
                                        "urgency": self.headers.get("Urgency"),
                                        "topic": self.headers.get("Topic"),
                                        "vapid_key": vapid_key})
            return self.reply(201)
        self.reply(404, {})


def main():
    server = ThreadingHTTPServer(("127.0.0.1", 0), Handler)
    print(f"PORT {server.server_address[1]}", flush=True)
    server.serve_forever()


if __name__ == "__main__":
    sys.exit(main())
