#!/usr/bin/python3
"""Tiny QMP + QEMU guest agent client for tests/e2e (standard library only).

Subcommands (SOCK is a unix socket path):
  ga-wait SOCK TIMEOUT [QEMU_PID] wait until the guest agent answers guest-sync
                                  (fail early when QEMU_PID has exited)
  exec SOCK TIMEOUT [--stdin FILE] -- PROG ARGS...
                                  run PROG in the guest via guest-exec, copy its
                                  stdout/stderr here, exit with its exit code
                                  (124 on timeout, like timeout(1))
  spawn SOCK -- PROG ARGS...      start PROG in the guest, do not wait; print its pid
  plug SOCK ID FILE SERIAL [BUS]  blockdev-add a raw FILE + device_add usb-storage
  unplug SOCK ID [TIMEOUT]        device_del, wait for DEVICE_DELETED on the same
                                  connection, then blockdev-del
  qmp SOCK COMMAND [JSON-ARGS]    run one QMP command, print the return value as JSON
  quit SOCK                       ask QEMU to quit

Every wait has a deadline; nothing here sleeps to synchronise except where the
protocol has no event to wait for (guest-exec-status), which is polled with a short,
growing interval and a bounded deadline.
"""

import base64
import json
import os
import socket
import sys
import time


class Timeout(Exception):
    pass


class Chan:
    """A JSON stream over a unix socket (QMP and QGA both speak concatenated JSON)."""

    def __init__(self, path, timeout=10.0):
        self.sock = socket.socket(socket.AF_UNIX, socket.SOCK_STREAM)
        self.sock.settimeout(timeout)
        self.sock.connect(path)
        self.buf = b""
        self.dec = json.JSONDecoder()

    def send(self, obj):
        self.sock.sendall(json.dumps(obj).encode() + b"\n")

    def send_raw(self, data):
        self.sock.sendall(data)

    def recv(self, deadline):
        while True:
            text = self.buf.lstrip()
            # QGA may prefix a 0xff sentinel (guest-sync-delimited) and may emit
            # garbage from an earlier, interrupted client: skip to the next '{'.
            start = text.find(b"{")
            if start > 0:
                text = text[start:]
            if text.startswith(b"{"):
                try:
                    obj, end = self.dec.raw_decode(text.decode("utf-8", "replace"))
                    consumed = len(text.decode("utf-8", "replace")[:end].encode())
                    self.buf = text[consumed:]
                    return obj
                except ValueError:
                    pass
            left = deadline - time.monotonic()
            if left <= 0:
                raise Timeout("no reply")
            self.sock.settimeout(left)
            try:
                chunk = self.sock.recv(65536)
            except socket.timeout:
                raise Timeout("no reply")
            if not chunk:
                raise EOFError("connection closed")
            self.buf += chunk

    def close(self):
        self.sock.close()


# --- QMP -------------------------------------------------------------------------

class QMP:
    def __init__(self, path, timeout=30.0):
        self.ch = Chan(path, timeout)
        self.events = []
        dl = time.monotonic() + timeout
        greeting = self.ch.recv(dl)
        if "QMP" not in greeting:
            raise RuntimeError("not a QMP greeting: %r" % greeting)
        self.cmd("qmp_capabilities")

    def cmd(self, name, args=None, timeout=30.0):
        msg = {"execute": name}
        if args:
            msg["arguments"] = args
        self.ch.send(msg)
        dl = time.monotonic() + timeout
        while True:
            r = self.ch.recv(dl)
            if "event" in r:
                self.events.append(r)
                continue
            if "error" in r:
                raise RuntimeError("%s: %s" % (name, r["error"].get("desc", r["error"])))
            return r.get("return")

    def wait_event(self, name, pred, timeout):
        for i, e in enumerate(self.events):
            if e["event"] == name and pred(e.get("data", {})):
                del self.events[i]
                return e
        dl = time.monotonic() + timeout
        while True:
            r = self.ch.recv(dl)
            if "event" in r:
                if r["event"] == name and pred(r.get("data", {})):
                    return r
                self.events.append(r)


# --- guest agent -------------------------------------------------------------------

class QGA:
    def __init__(self, path, timeout=5.0):
        self.ch = Chan(path, timeout)
        self.sync(timeout)

    def sync(self, timeout):
        sid = int.from_bytes(os.urandom(4), "little") & 0x7FFFFFFF
        # A fresh random id: replies left over from an earlier, interrupted client
        # are skipped until ours comes back.
        self.ch.send({"execute": "guest-sync", "arguments": {"id": sid}})
        dl = time.monotonic() + timeout
        while True:
            r = self.ch.recv(dl)
            if r.get("return") == sid:
                return

    def cmd(self, name, args=None, timeout=30.0):
        msg = {"execute": name}
        if args:
            msg["arguments"] = args
        self.ch.send(msg)
        r = self.ch.recv(time.monotonic() + timeout)
        if "error" in r:
            raise RuntimeError("%s: %s" % (name, r["error"].get("desc", r["error"])))
        return r.get("return")


def ga_wait(path, timeout, qemu_pid=None):
    """Wait for the agent: the socket exists as soon as QEMU runs, but the agent in the
    guest only answers once it is started, and there is no event for that.  Keep ONE
    connection and re-send guest-sync with a fresh id every 2 s, accepting the answer to
    any of them: with reconnects, the agent's answer to a request sent before it was
    up can be delivered to the next connection only, one step behind for ever."""
    dl = time.monotonic() + timeout
    last = None
    ch = None
    sent = set()
    while time.monotonic() < dl:
        if qemu_pid:
            try:
                os.kill(qemu_pid, 0)
            except OSError:
                print("QEMU (pid %d) is gone" % qemu_pid, file=sys.stderr)
                return 1
        try:
            if ch is None:
                ch = Chan(path, 5.0)
            sid = int.from_bytes(os.urandom(4), "little") & 0x7FFFFFFF
            sent.add(sid)
            ch.send({"execute": "guest-sync", "arguments": {"id": sid}})
            step = min(time.monotonic() + 2.0, dl)
            while True:
                r = ch.recv(step)
                if r.get("return") in sent:
                    ch.close()
                    return 0
        except Timeout as e:
            last = e
        except (OSError, EOFError) as e:
            last = e
            if ch is not None:
                ch.close()
                ch = None
            # socket not there yet (QEMU starting) or closed: bounded by dl
            time.sleep(0.2)
    print("guest agent did not answer within %ss (%s)" % (timeout, last), file=sys.stderr)
    return 1


def ga_exec(path, timeout, argv, stdin_data=None, wait=True):
    q = QGA(path)
    args = {"path": argv[0], "arg": argv[1:], "capture-output": wait}
    if stdin_data is not None:
        args["input-data"] = base64.b64encode(stdin_data).decode()
    pid = q.cmd("guest-exec", args)["pid"]
    if not wait:
        print(pid)
        return 0
    dl = time.monotonic() + timeout
    delay = 0.005
    while True:
        # No completion event exists in the agent protocol: poll guest-exec-status
        # with a growing interval (5 ms .. 100 ms) and a hard deadline.
        st = q.cmd("guest-exec-status", {"pid": pid})
        if st.get("exited"):
            break
        if time.monotonic() >= dl:
            q.cmd("guest-exec", {"path": "/bin/kill", "arg": ["-KILL", str(pid)]})
            print("guest command timed out after %ss: %s" % (timeout, " ".join(argv)),
                  file=sys.stderr)
            return 124
        time.sleep(delay)
        delay = min(delay * 2, 0.1)
    out = base64.b64decode(st.get("out-data", ""))
    err = base64.b64decode(st.get("err-data", ""))
    sys.stdout.buffer.write(out)
    sys.stdout.flush()
    sys.stderr.buffer.write(err)
    sys.stderr.flush()
    if st.get("out-truncated") or st.get("err-truncated"):
        print("(guest output truncated)", file=sys.stderr)
    if "signal" in st:
        return 128 + st["signal"]
    return st.get("exitcode", 1)


# --- USB sticks ----------------------------------------------------------------------

def plug(path, dev_id, image, serial, bus="xhci.0"):
    q = QMP(path)
    q.cmd("blockdev-add", {
        "node-name": "blk-" + dev_id,
        "driver": "raw",
        "file": {"driver": "file", "filename": image},
    })
    try:
        q.cmd("device_add", {
            "driver": "usb-storage", "bus": bus, "drive": "blk-" + dev_id,
            "serial": serial, "id": dev_id, "removable": True,
        })
    except RuntimeError:
        q.cmd("blockdev-del", {"node-name": "blk-" + dev_id})
        raise
    return 0


def unplug(path, dev_id, timeout=30.0):
    q = QMP(path)
    q.cmd("device_del", {"id": dev_id})
    # USB devices leave at once (no guest handshake), but the event is the proof.
    q.wait_event("DEVICE_DELETED", lambda d: d.get("device") == dev_id, timeout)
    q.cmd("blockdev-del", {"node-name": "blk-" + dev_id})
    return 0


def main(argv):
    if len(argv) < 3:
        print(__doc__, file=sys.stderr)
        return 2
    sub, sock = argv[1], argv[2]
    rest = argv[3:]
    try:
        if sub == "ga-wait":
            return ga_wait(sock, float(rest[0]), int(rest[1]) if len(rest) > 1 else None)
        if sub in ("exec", "spawn"):
            timeout = 0.0
            if sub == "exec":
                timeout = float(rest[0])
                rest = rest[1:]
            stdin_data = None
            if rest and rest[0] == "--stdin":
                with open(rest[1], "rb") as f:
                    stdin_data = f.read()
                rest = rest[2:]
            if rest and rest[0] == "--":
                rest = rest[1:]
            return ga_exec(sock, timeout, rest, stdin_data, wait=(sub == "exec"))
        if sub == "plug":
            return plug(sock, *rest)
        if sub == "unplug":
            return unplug(sock, rest[0], float(rest[1]) if len(rest) > 1 else 30.0)
        if sub == "qmp":
            q = QMP(sock)
            args = json.loads(rest[1]) if len(rest) > 1 else None
            print(json.dumps(q.cmd(rest[0], args)))
            return 0
        if sub == "quit":
            q = QMP(sock, timeout=5)
            q.cmd("quit")
            return 0
    except (RuntimeError, Timeout, OSError, EOFError) as e:
        print("vm.py %s: %s" % (sub, e), file=sys.stderr)
        return 1
    print("unknown subcommand %s" % sub, file=sys.stderr)
    return 2


if __name__ == "__main__":
    sys.exit(main(sys.argv))
