#!/usr/bin/python3
"""Token server for docker-registry's `auth.token` in tests (loopback only).

Serves GET /token?service=S&scope=repository:NAME:ACTIONS...: anonymous callers get only
`pull`, callers with the configured basic credentials get every action they ask for. The
token is an RS256 JWT whose x5c header carries the signing certificate, which the registry
trusts through `rootcertbundle` (distribution's token-auth specification). Every request is
logged as one JSON line so tests can see which scopes a client asked for.

Also serves POST /token with an OAuth2 refresh-token grant (form fields grant_type=refresh_token,
refresh_token, service, scope, client_id), as docker and containers/image exchange an identity
token: the refresh token `identity-PASSWORD` authenticates as USER; any other is refused (401).

usage: token_server.py PORTFILE KEY.pem CERT.pem USER PASSWORD
"""
import base64
import json
import sys
import threading
import time
import uuid
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from urllib.parse import parse_qs, urlparse

import jwt
from cryptography import x509
from cryptography.hazmat.primitives import serialization

port_file, key_file, cert_file, user, password = sys.argv[1:6]
signing_key = open(key_file, "rb").read()
certificate = x509.load_pem_x509_certificate(open(cert_file, "rb").read())
chain = [base64.b64encode(certificate.public_bytes(serialization.Encoding.DER)).decode()]
log_lock = threading.Lock()


def log(record):
    """One JSON line per request. The server answers on many threads, and `print` writes the
    text and its newline separately, so two threads could interleave them: one write of the
    whole line, under a lock, keeps every line whole."""
    line = json.dumps(record) + "\n"
    with log_lock:
        sys.stdout.write(line)
        sys.stdout.flush()


def granted(scopes, authenticated):
    out = []
    for scope in scopes:
        for item in scope.split():
            kind, _, rest = item.partition(":")
            name, _, actions = rest.rpartition(":")
            if kind != "repository" or not name:
                continue
            allowed = [a for a in actions.split(",") if authenticated or a == "pull"]
            out.append({"type": "repository", "name": name, "actions": allowed})
    return out


class Handler(BaseHTTPRequestHandler):
    def do_POST(self):
        length = int(self.headers.get("Content-Length", "0"))
        form = parse_qs(self.rfile.read(length).decode())
        field = lambda k: form.get(k, [""])[0]
        if field("grant_type") != "refresh_token" or field("refresh_token") != f"identity-{password}":
            log({"grant": field("grant_type"), "refused": True})
            self.send_response(401)
            self.send_header("Content-Length", "0")
            self.end_headers()
            return
        scopes = field("scope").split()
        self.answer(scopes, form.get("service", [""]), True, {"grant": "refresh_token",
                                                               "client_id": field("client_id")})

    def do_GET(self):
        query = parse_qs(urlparse(self.path).query)
        header = self.headers.get("Authorization", "")
        authenticated = False
        if header.startswith("Bearer "):
            # An identity token must be exchanged, never presented as a bearer token.
            log({"bearer_presented": True})
            self.send_response(401)
            self.send_header("Content-Length", "0")
            self.end_headers()
            return
        if header.startswith("Basic "):
            given = base64.b64decode(header[6:]).decode()
            if given != f"{user}:{password}":
                self.send_response(401)
                self.end_headers()
                return
            authenticated = True
        self.answer(query.get("scope", []), query.get("service", [""]), authenticated, {})

    def answer(self, scopes, service, authenticated, extra):
        query = {"scope": scopes, "service": service}
        access = granted(query.get("scope", []), authenticated)
        now = int(time.time())
        claims = {
            "iss": "bootseal-test-issuer",
            "sub": user if authenticated else "",
            "aud": query.get("service", [""])[0],
            "iat": now,
            "nbf": now - 30,
            "exp": now + 600,
            "jti": uuid.uuid4().hex,
            "access": access,
        }
        token = jwt.encode(claims, signing_key, algorithm="RS256", headers={"x5c": chain})
        log({"scopes": query.get("scope", []), "access": access, **extra})
        answer = {"token": token, "access_token": token, "expires_in": 600}
        if extra.get("grant"):
            answer = {"access_token": token, "expires_in": 600, "scope": " ".join(scopes)}
        body = json.dumps(answer).encode()
        self.send_response(200)
        self.send_header("Content-Type", "application/json")
        self.send_header("Content-Length", str(len(body)))
        self.end_headers()
        self.wfile.write(body)

    def log_message(self, *args):
        pass


server = ThreadingHTTPServer(("127.0.0.1", 0), Handler)
with open(port_file + ".tmp", "w") as f:
    f.write(str(server.server_address[1]))
import os
os.rename(port_file + ".tmp", port_file)
server.serve_forever()
