"""Drive pve-sim with proxmoxer (a real third-party Proxmox client).

Run by tests/sim_proxmoxer.rs. Environment:
  PVE_SIM_HOST, PVE_SIM_PORT          where the simulator listens
  PVE_SIM_TOKEN                       USER@REALM!TOKENID=SECRET
  PVE_SIM_USER, PVE_SIM_PASSWORD      for ticket auth
  PVE_SIM_AUTH                        "token" or "ticket"
  PVE_SIM_VMID                        vmid to use
Lifecycle: create -> task -> config -> start -> status -> interfaces -> stop -> delete.
Exits non-zero (with a message) on the first mismatch.
"""
import os
import sys
import time

import urllib3
from proxmoxer import ProxmoxAPI
from proxmoxer.core import ResourceException

urllib3.disable_warnings()

host = os.environ["PVE_SIM_HOST"]
port = int(os.environ["PVE_SIM_PORT"])
auth = os.environ["PVE_SIM_AUTH"]
vmid = int(os.environ["PVE_SIM_VMID"])
node = "pve1"

if auth == "token":
    user_tok, secret = os.environ["PVE_SIM_TOKEN"].rsplit("=", 1)
    user, token_name = user_tok.split("!", 1)
    pve = ProxmoxAPI(host, port=port, user=user, token_name=token_name, token_value=secret, verify_ssl=False)
else:
    pve = ProxmoxAPI(host, port=port, user=os.environ["PVE_SIM_USER"],
                     password=os.environ["PVE_SIM_PASSWORD"], verify_ssl=False)


def check(cond, msg):
    if not cond:
        print(f"FAIL ({auth}): {msg}", file=sys.stderr)
        sys.exit(1)


def wait(upid, timeout=20):
    check(upid.startswith(f"UPID:{node}:"), f"bad upid {upid!r}")
    deadline = time.time() + timeout
    while time.time() < deadline:
        st = pve.nodes(node).tasks(upid).status.get()
        if st["status"] == "stopped":
            check(st["exitstatus"] == "OK", f"task {upid} failed: {st}")
            return st
        time.sleep(0.05)
    check(False, f"task {upid} did not finish")


version = pve.version.get()
check("version" in version, f"version: {version}")

nextid = pve.cluster.nextid.get()
check(str(nextid).isdigit(), f"nextid {nextid!r}")

upid = pve.nodes(node).lxc.post(
    vmid=vmid,
    ostemplate="local:vztmpl/debian-12-standard_12.7-1_amd64.tar.zst",
    hostname=f"py-{auth}",
    memory=1024,
    rootfs="local-lvm:4",
    net0="name=eth0,bridge=vmbr0,ip=dhcp",
    tags="Proxmoxer,Test",
    unprivileged=1,
)
check("vzcreate" in upid, f"create upid {upid}")
wait(upid)

conf = pve.nodes(node).lxc(vmid).config.get()
check(conf["hostname"] == f"py-{auth}", f"config hostname: {conf}")
check(conf["memory"] == 1024, f"config memory: {conf}")
check(conf["tags"] == "proxmoxer;test", f"tags normalized: {conf}")
check(len(conf["digest"]) == 40, f"digest: {conf}")
check("hwaddr=BC:24:11:" in conf["net0"], f"net0 mac: {conf}")

pve.nodes(node).lxc(vmid).config.put(description="set by proxmoxer", digest=conf["digest"])
conf2 = pve.nodes(node).lxc(vmid).config.get()
check(conf2["description"] == "set by proxmoxer\n", f"description: {conf2}")

wait(pve.nodes(node).lxc(vmid).status.start.post())
cur = pve.nodes(node).lxc(vmid).status.current.get()
check(cur["status"] == "running", f"status: {cur}")
check(cur["maxmem"] == 1024 * 1024 * 1024, f"maxmem: {cur}")

ifaces = pve.nodes(node).lxc(vmid).interfaces.get()
eth0 = [i for i in ifaces if i["name"] == "eth0"]
check(eth0 and eth0[0].get("inet", "").startswith("10.10.0."), f"interfaces: {ifaces}")

wait(pve.nodes(node).lxc(vmid).status.stop.post())
cur = pve.nodes(node).lxc(vmid).status.current.get()
check(cur["status"] == "stopped", f"status after stop: {cur}")
check(pve.nodes(node).lxc(vmid).interfaces.get() is None, "interfaces of a stopped CT must be null")

# HA as proxmoxer users drive it (pve-ha-manager's API): a resource, a node-affinity rule
pve.cluster.ha.resources.post(sid=f"ct:{vmid}", state="stopped", max_restart=2)
res = pve.cluster.ha.resources(f"ct:{vmid}").get()
check(res["state"] == "stopped" and res["max_restart"] == 2, f"HA resource: {res}")
pve.cluster.ha.rules.post(rule=f"py{vmid}", type="node-affinity", resources=f"ct:{vmid}", nodes=f"{node}:1")
rules = [r["rule"] for r in pve.cluster.ha.rules.get()]
check(f"py{vmid}" in rules, f"HA rules: {rules}")
svc = [s for s in pve.cluster.ha.status.current.get() if s.get("sid") == f"ct:{vmid}"]
check(svc and svc[0]["request_state"] == "stopped", f"HA status: {svc}")
try:
    pve.nodes(node).lxc(vmid).delete()
    check(False, "destroying an HA resource without purge must fail")
except ResourceException as e:
    check("purge parameter not set" in str(e), f"destroy without purge: {e}")

wait(pve.nodes(node).lxc(vmid).delete(purge=1))
check(pve.cluster.ha.resources.get() == [], "purge removes the HA resource")
check(pve.cluster.ha.rules.get() == [], "and the rule it was the only resource of")
ids = [c["vmid"] for c in pve.nodes(node).lxc.get()]
check(vmid not in ids, f"CT still listed: {ids}")
print(f"OK {auth}")
