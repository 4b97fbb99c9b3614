#!/usr/bin/env python3
"""Trim the official PVE API schema to the endpoints pve-sim serves.

Usage: python3 src/sim/trim_schema.py ../shared/pve-api/schema-lxc.json src/sim/schema-ha.cut.json \
           > src/sim/schema-lxc.json

Input: the cut of pve-docs api-viewer/apidata.js (PVE 9.1) described in
../shared/pve-api/README.md, plus further cuts of the same file in the same shape (`schema-ha.cut.json`: the
`/cluster/ha` entries of the same pve-docs commit, which the shared cut lacks). Output keeps, for every served path and method, only
what the simulator needs to validate requests and to answer like Proxmox:
`parameters` (verbatim, minus human descriptions), `protected`, `proxyto`,
`allowtoken` and the returns type. Re-run it after updating the schema or the
SERVED list (which must match the router in src/sim/api.rs).
"""
import json
import sys

SERVED = {
    "/version": ["GET"],
    "/access/ticket": ["GET", "POST"],
    "/access/permissions": ["GET"],
    "/cluster/resources": ["GET"],
    "/cluster/nextid": ["GET"],
    "/cluster/status": ["GET"],
    "/cluster/tasks": ["GET"],
    "/nodes": ["GET"],
    "/nodes/{node}/status": ["GET"],
    "/nodes/{node}/version": ["GET"],
    "/nodes/{node}/lxc": ["GET", "POST"],
    "/nodes/{node}/lxc/{vmid}": ["GET", "DELETE"],
    "/nodes/{node}/lxc/{vmid}/config": ["GET", "PUT"],
    "/nodes/{node}/lxc/{vmid}/pending": ["GET"],
    "/nodes/{node}/lxc/{vmid}/status": ["GET"],
    "/nodes/{node}/lxc/{vmid}/status/current": ["GET"],
    "/nodes/{node}/lxc/{vmid}/status/start": ["POST"],
    "/nodes/{node}/lxc/{vmid}/status/stop": ["POST"],
    "/nodes/{node}/lxc/{vmid}/status/shutdown": ["POST"],
    "/nodes/{node}/lxc/{vmid}/status/reboot": ["POST"],
    "/nodes/{node}/lxc/{vmid}/status/suspend": ["POST"],
    "/nodes/{node}/lxc/{vmid}/status/resume": ["POST"],
    "/nodes/{node}/lxc/{vmid}/snapshot": ["GET", "POST"],
    "/nodes/{node}/lxc/{vmid}/snapshot/{snapname}": ["GET", "DELETE"],
    "/nodes/{node}/lxc/{vmid}/snapshot/{snapname}/rollback": ["POST"],
    "/nodes/{node}/lxc/{vmid}/snapshot/{snapname}/config": ["GET"],
    "/nodes/{node}/lxc/{vmid}/firewall/rules": ["GET", "POST"],
    "/nodes/{node}/lxc/{vmid}/firewall/rules/{pos}": ["GET", "PUT", "DELETE"],
    "/nodes/{node}/lxc/{vmid}/firewall/options": ["GET", "PUT"],
    "/nodes/{node}/lxc/{vmid}/migrate": ["POST"],
    "/nodes/{node}/lxc/{vmid}/template": ["POST"],
    "/nodes/{node}/lxc/{vmid}/clone": ["POST"],
    "/nodes/{node}/lxc/{vmid}/resize": ["PUT"],
    "/nodes/{node}/lxc/{vmid}/interfaces": ["GET"],
    "/nodes/{node}/lxc/{vmid}/termproxy": ["POST"],
    "/nodes/{node}/lxc/{vmid}/vncwebsocket": ["GET"],
    "/nodes/{node}/vzdump": ["POST"],
    "/nodes/{node}/tasks": ["GET"],
    "/nodes/{node}/tasks/{upid}": ["GET", "DELETE"],
    "/nodes/{node}/tasks/{upid}/log": ["GET"],
    "/nodes/{node}/tasks/{upid}/status": ["GET"],
    "/nodes/{node}/storage": ["GET"],
    "/nodes/{node}/network": ["GET"],
    "/storage": ["GET"],
    "/storage/{storage}": ["GET"],
    "/nodes/{node}/storage/{storage}/status": ["GET"],
    "/nodes/{node}/storage/{storage}/content": ["GET"],
    "/nodes/{node}/storage/{storage}/content/{volume}": ["GET", "PUT", "DELETE"],
    "/nodes/{node}/storage/{storage}/download-url": ["POST"],
    "/nodes/{node}/storage/{storage}/oci-registry-pull": ["POST"],
    "/nodes/{node}/query-oci-repo-tags": ["GET"],
    "/nodes/{node}/aplinfo": ["GET", "POST"],
    "/pools": ["GET", "POST"],
    "/cluster/ha/resources": ["GET", "POST"],
    "/cluster/ha/resources/{sid}": ["GET", "PUT", "DELETE"],
    "/cluster/ha/resources/{sid}/migrate": ["POST"],
    "/cluster/ha/resources/{sid}/relocate": ["POST"],
    "/cluster/ha/rules": ["GET", "POST"],
    "/cluster/ha/rules/{rule}": ["GET", "PUT", "DELETE"],
    "/cluster/ha/status/current": ["GET"],
    "/cluster/ha/status/disarm-ha": ["POST"],
    "/cluster/ha/status/arm-ha": ["POST"],
}

# Endpoints the cut in ../shared/pve-api/schema-lxc.json lacks (it lists the path among the
# children of /nodes/{node} but has no entry for it). Modelled from ../shared/pve-api/pve9-oci.md
# and the method's definition in pve-manager PVE/API2/Nodes.pm (query_oci_repo_tags), which is
# what apidata.js is generated from.
EXTRA = [
    {
        "path": "/nodes/{node}/query-oci-repo-tags",
        "info": {
            "GET": {
                "allowtoken": 1,
                "method": "GET",
                "name": "query_oci_repo_tags",
                "parameters": {
                    "additionalProperties": 0,
                    "properties": {
                        "node": {"format": "pve-node", "type": "string"},
                        "reference": {
                            "pattern": "^(?:(?:[a-zA-Z\\d]|[a-zA-Z\\d][a-zA-Z\\d-]*[a-zA-Z\\d])"
                            "(?:\\.(?:[a-zA-Z\\d]|[a-zA-Z\\d][a-zA-Z\\d-]*[a-zA-Z\\d]))*(?::\\d+)?/)?[a-z\\d]+"
                            "(?:(?:[._]|__|[-]*)[a-z\\d]+)*(?:/[a-z\\d]+(?:(?:[._]|__|[-]*)[a-z\\d]+)*)*$",
                            "type": "string",
                        },
                    },
                },
                "proxyto": "node",
                "returns": {"items": {"type": "string"}, "type": "array"},
            }
        },
    },
]

# pve-container 6.1.8 (commit 2785bef, "config: correctly skip tab characters in env/entrypoint
# property") fixed the control-character class of `entrypoint` and `env` from \x10-\x1F to
# \x0a-\x1F: newlines are refused since. The pve-docs 9.1.3 dump still has the old class; the
# simulator follows the current one (../shared/pve-api/pve9-oci.md, pve-container 6.1.10).
PATTERN_FIXES = {"entrypoint", "env"}


def fix_patterns(params):
    for name in PATTERN_FIXES:
        prop = params.get("properties", {}).get(name)
        if prop and "pattern" in prop:
            prop["pattern"] = prop["pattern"].replace("\\x10-\\x1F", "\\x0a-\\x1F")
    return params


DROP = {"description", "verbose_description", "typetext", "format_description"}


def strip(v):
    if isinstance(v, dict):
        # drop human text attributes, but keep parameters that happen to be named like them
        return {k: strip(x) for k, x in v.items() if not (k in DROP and isinstance(x, str))}
    if isinstance(v, list):
        return [strip(x) for x in v]
    return v


def main():
    src = json.load(open(sys.argv[1]))
    endpoints = list(src["endpoints"])
    for extra in sys.argv[2:]:
        endpoints += json.load(open(extra))["endpoints"]
    out = []
    have = {ep["path"] for ep in endpoints}
    for ep in endpoints + [e for e in EXTRA if e["path"] not in have]:
        methods = SERVED.get(ep["path"])
        if not methods:
            continue
        info = {}
        for m in methods:
            i = ep["info"][m]
            info[m] = {
                "protected": i.get("protected", 0),
                "proxyto": i.get("proxyto"),
                "allowtoken": i.get("allowtoken", 1),
                "parameters": fix_patterns(strip(i.get("parameters", {}))),
                "returns_type": (i.get("returns") or {}).get("type"),
            }
        out.append({"path": ep["path"], "info": info})
    missing = set(SERVED) - {e["path"] for e in out}
    if missing:
        sys.exit(f"paths not in the schema: {sorted(missing)}")
    json.dump({"_source": src["_source"], "endpoints": out}, sys.stdout, indent=None,
              separators=(",", ":"), sort_keys=True)
    sys.stdout.write("\n")


main()
