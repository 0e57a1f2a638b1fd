#!/usr/bin/python
# -*- coding: utf-8 -*-
# An Ansible module for usbvm(1). It maps its arguments onto 'usbvm attach|detach ... --json'
# and usbvm's answer onto the module's result; every decision (what is attached, what is
# refused, whether anything changes) is usbvm's.

from __future__ import absolute_import, division, print_function

__metaclass__ = type

DOCUMENTATION = r"""
---
module: usbvm_device
short_description: Attach a USB device to a libvirt domain, or detach it, with usbvm
description:
  - Attaches a USB device (above all a stick or disk) of the KVM host to a libvirt domain, or
    detaches it, by running C(usbvm attach) or C(usbvm detach) with C(--json).
  - Every decision is usbvm's. It refuses a device whose disk is mounted, swapped on or held on
    the host, a device another domain holds, and a device it did not attach unless forced; the
    task then fails with usbvm's message, which says what to do.
  - Idempotent. Attaching what is already attached in that mode, or detaching what is not
    attached, reports no change.
  - In check mode usbvm itself predicts the change (C(--check)) and changes nothing.
  - With C(--diff) the device's attachments (from C(usbvm status --json)) are shown before and
    after.
version_added: "0.1.0"
options:
  state:
    description:
      - C(attached) runs C(usbvm attach), C(detached) runs C(usbvm detach).
    type: str
    choices: [attached, detached]
    default: attached
  domain:
    description:
      - The libvirt domain, by name or UUID.
      - Required with I(state=attached). With I(state=detached) and no domain, the device is
        detached from whichever running domain holds it (C(usbvm detach --all)).
    type: str
  device:
    description:
      - The device, as any specifier usbvm understands (see usbvm(1)) - a port path (C(1-2.4)),
        C(VID:PID), C(serial=SERIAL), a block device (C(/dev/sdb)), a C(/dev/disk/by-id) link,
        or the identity or C(ua-usbvm-) alias usbvm prints.
      - A C(ua-usbvm-) alias detaches a device that is no longer plugged in.
    type: str
    required: true
  mode:
    description:
      - How the device reaches the guest (I(state=attached) only).
      - C(usb) passes the real USB device through; C(virtio), C(scsi) and C(usb-disk) attach its
        disk as a virtio-blk, virtio-scsi or emulated USB mass-storage disk.
    type: str
    choices: [usb, virtio, scsi, usb-disk]
    default: usb
  readonly:
    description:
      - Attach the disk read-only (disk modes only).
    type: bool
    default: false
  persistent:
    description:
      - Change the domain's persistent definition too, not only the running domain
        (C(--persistent)).
    type: bool
    default: false
  force:
    description:
      - With I(state=detached), also detach a device that usbvm did not attach, named
        explicitly (C(usbvm detach --force)).
    type: bool
    default: false
  timeout:
    description:
      - With I(state=detached), how many seconds to wait for the guest to release the device.
        When it does not, the task fails and usbvm reports the detach as pending.
    type: float
  uri:
    description:
      - The libvirt connection URI (C(usbvm --connect)); usbvm's default when omitted.
    type: str
  executable:
    description:
      - The usbvm program to run, when it is not C(usbvm) on the PATH.
    type: path
notes:
  - Supports check mode and diff mode.
  - Runs usbvm on the managed host, which needs the usbvm package (see the C(usbvm) role).
  - usbvm(1) documents the verbs, their options and the --json answers this module maps.
requirements:
  - usbvm
author:
  - usbvm authors
"""

EXAMPLES = r"""
- name: Pass the backup stick to the backup VM as a read-only virtio disk
  usbvm_device:
    domain: backup
    device: serial=4C530001230314115163
    mode: virtio
    readonly: true

- name: Pass a stick through as a USB device, also across domain restarts
  usbvm_device:
    domain: win10
    device: 0781:5567
    mode: usb
    persistent: true

- name: Take the stick back from whichever domain has it
  usbvm_device:
    device: serial=4C530001230314115163
    state: detached
"""

RETURN = r"""
msg:
  description: usbvm's one-sentence answer.
  returned: always
  type: str
  sample: attached 1-2 to 'backup' as virtio (alias ua-usbvm-2f0c1e8a3b4d5e6f)
rc:
  description: usbvm's exit status (0 success, 3 not found, 4 refused, 5 detach pending).
  returned: always
  type: int
  sample: 0
domain:
  description: The domain, by name.
  returned: when usbvm got that far
  type: str
  sample: backup
device:
  description: The device's port path (or the specifier given, when usbvm did not resolve it).
  returned: always
  type: str
  sample: 1-2
identity:
  description: The device's stable identity (vendor:product:serial, or vendor:product@port).
  returned: when the device is present
  type: str
  sample: 0781:5567:4C530001230314115163
mode:
  description: The mode the device is (or would be) attached in.
  returned: when known
  type: str
  sample: virtio
alias:
  description: The libvirt user alias usbvm gives the device in the domain.
  returned: when known
  type: str
  sample: ua-usbvm-2f0c1e8a3b4d5e6f
state:
  description: What usbvm reports for the device in the domain (attached, detached, pending).
  returned: when usbvm acted or checked
  type: str
  sample: attached
notes:
  description: usbvm's remarks, such as that a persistent disk needs its by-id link to start.
  returned: always
  type: list
  elements: str
  sample: []
"""

import json

from ansible.module_utils.basic import AnsibleModule


def usbvm_run(module, argv):
    """Runs usbvm with --json; returns (exit code, the parsed answer)."""
    args = [module.params["executable"] or module.get_bin_path("usbvm", required=True)]
    if module.params["uri"]:
        args += ["--connect", module.params["uri"]]
    rc, out, err = module.run_command(args + argv + ["--json"])
    try:
        return rc, json.loads(out)
    except ValueError:
        module.fail_json(
            msg=err.strip() or "usbvm gave no answer (exit status %d)" % rc,
            rc=rc,
            stdout=out,
            stderr=err,
        )


def attachments(module, alias):
    """The device's attachments, as 'usbvm status' lists them."""
    rc, status = usbvm_run(module, ["status"])
    if rc != 0 or not isinstance(status, list):
        module.fail_json(msg="usbvm status failed: %s" % status, rc=rc)
    keys = ("domain", "mode", "readonly")
    return sorted(
        ({k: s.get(k) for k in keys} for s in status if alias and s.get("alias") == alias),
        key=lambda s: s["domain"],
    )


def command(p, check):
    if p["state"] == "attached":
        argv = ["attach", p["domain"], p["device"], "--mode", p["mode"]]
        argv += ["--readonly"] if p["readonly"] else []
    else:
        argv = ["detach"] + ([p["domain"]] if p["domain"] else ["--all"]) + [p["device"]]
        argv += ["--force"] if p["force"] else []
        argv += ["--timeout", "%g" % p["timeout"]] if p["timeout"] is not None else []
    argv += ["--persistent"] if p["persistent"] else []
    argv += ["--check"] if check else []
    return argv


def main():
    module = AnsibleModule(
        argument_spec=dict(
            state=dict(type="str", default="attached", choices=["attached", "detached"]),
            domain=dict(type="str"),
            device=dict(type="str", required=True),
            mode=dict(type="str", default="usb", choices=["usb", "virtio", "scsi", "usb-disk"]),
            readonly=dict(type="bool", default=False),
            persistent=dict(type="bool", default=False),
            force=dict(type="bool", default=False),
            timeout=dict(type="float"),
            uri=dict(type="str"),
            executable=dict(type="path"),
        ),
        required_if=[("state", "attached", ["domain"])],
        supports_check_mode=True,
    )
    p = module.params

    before = None
    if module._diff:
        # The alias comes from usbvm; asking it first (--check changes nothing) names the device.
        rc, probe = usbvm_run(module, command(p, True))
        before = attachments(module, probe.get("alias"))

    rc, answer = usbvm_run(module, command(p, module.check_mode))
    result = {k: v for k, v in answer.items() if k not in ("changed", "failed")}
    result["changed"] = bool(answer.get("changed"))
    if answer.get("failed") or rc != 0:
        module.fail_json(**result)

    if module._diff:
        if not module.check_mode:
            after = attachments(module, answer.get("alias"))
        elif not result["changed"]:
            after = before
        elif p["state"] == "attached":
            # What usbvm said it would attach.
            new = {"domain": answer.get("domain"), "mode": answer.get("mode"),
                   "readonly": p["readonly"]}
            after = sorted(before + [new], key=lambda s: s["domain"])
        else:
            after = [s for s in before if s["domain"] != answer.get("domain")]
        label = answer.get("device") or p["device"]
        result["diff"] = dict(
            before={"device": label, "attached": before},
            after={"device": label, "attached": after},
            before_header="%s (usbvm status)" % label,
            after_header="%s (usbvm status)" % label,
        )
    module.exit_json(**result)


if __name__ == "__main__":
    main()
