#!/usr/bin/env python3
"""The hostile-device corpus: USB sticks whose strings are chosen by an attacker, written as an
umockdev fixture (the device strings go in byte for byte, as H: attributes, as sysfs has them).

  mkcorpus.py fixture   > corpus.umockdev   one stick per corpus string, ports 1-1 ... 1-N
  mkcorpus.py list                          "PORT<TAB>NAME<TAB>SERIAL-AS-HEX" per stick

Every stick's serial is a corpus string, its product is "Stick " + the same string, and its
disk (sd<letters>, no partition) has the by-id link a udev would make of it. The last two
sticks are clones: the same vendor, product and serial as each other.
"""
import os
import sys

sys.path.insert(0, os.path.join(os.path.dirname(os.path.abspath(__file__)), "..", "fixtures"))
import mkfixtures as mk  # noqa: E402

CORPUS = [
    ("brace-pipe", b"4C53;{id,-u}|cat"),
    ("subst", b"$(touch PWNED)"),
    ("backtick", b"`touch PWNED`"),
    ("ampersand", b"X&touch PWNED&"),
    ("redirect", b">PWNED"),
    ("quotes", b"a'b\"c"),
    ("glob", b"*"),
    ("tilde", b"~root"),
    ("history", b"!!"),
    ("comment", b"#x"),
    ("blank", b"a b;touch PWNED"),
    ("newline", b"A\ntouch PWNED"),
    ("forged-record", b"X\n<0>usbvm: forged emergency record"),
    ("ansi", b"\x1b[31mRED\x1b]0;title\x07"),
    ("c1-csi", "A\u009b31mB".encode()),
    ("bidi", "ABC\u202eDEF\u2066G\u061c".encode()),
    ("zero-width", "A\u200bB\ufeffC\u200f".encode()),
    ("invalid-utf8", b"\xff\xfe\xc3(\xed\xa0\x80"),
    ("nul", b"AB\x00;touch PWNED"),
    ("long", b"S" * 4094),
    ("xml", b"]]><x a='&amp;'/><!--"),
    ("json", b'"},{"x":1,"\\u0000'),
    ("backslash", b"a\\b\\"),
    ("option", b"--json"),
    ("format", b"%s%n%x"),
    ("del", b"A\x7fB"),
]
CLONE = b"CLONE0001"


def disk_name(i):
    return "sd" + chr(ord("a") + i // 26) + chr(ord("a") + i % 26)


def udev_safe(b):
    return "".join(chr(c) if chr(c).isalnum() or chr(c) in "#+-.:=@_" else "_" for c in b)


def sticks():
    """(port, name, serial bytes, disk name) of every stick, clones last."""
    out = [(f"1-{i + 1}", name, s, disk_name(i)) for i, (name, s) in enumerate(CORPUS)]
    n = len(out)
    out.append((f"1-{n + 1}", "clone-a", CLONE, disk_name(n)))
    out.append((f"1-{n + 2}", "clone-b", CLONE, disk_name(n + 1)))
    return out


def fixture():
    out = mk.Out()
    usb1 = f"{mk.PCI}/usb1"
    all_sticks = sticks()
    mk.root_hub_usb2(out, usb1, 1, len(all_sticks))
    for i, (port, _, serial, disk) in enumerate(all_sticks):
        path = f"{usb1}/{port}"
        mk.usb_device(out, path, 1, i + 2,
                      mk.devdesc(0x0200, 0, 0, 0, 64, 0x16C0, 0x05DC, 0x0100, 1, 2, 3),
                      mk.bot_config(0x32), manufacturer=b"ACME", product=b"Stick " + serial,
                      serial=serial, depth=1)
        intf = mk.usb_interface(out, path, 0, 0, 8, 6, 0x50, 2, "usb-storage")
        # udev builds the by-id name from the SCSI strings and the mangled serial.
        by_id = f"usb-ACME_Stick_{udev_safe(serial)[:64]}-0:0"
        mk.scsi_disk(out, intf, 10 + i, "ACME", "Stick", {"name": disk, "major": 65 + i // 16},
                     (i % 16) * 16, 32768, by_id, [], serial_short=udev_safe(serial)[:64])
    return out.text()


if __name__ == "__main__":
    what = sys.argv[1] if len(sys.argv) > 1 else ""
    if what == "fixture":
        sys.stdout.write(fixture())
    elif what == "list":
        for port, name, serial, disk in sticks():
            print(f"{port}\t{name}\t{serial.hex()}\t{disk}")
    else:
        sys.exit(f"usage: {sys.argv[0]} fixture|list")
