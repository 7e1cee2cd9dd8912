/**
 * The PATH the supervisor runs `ip` and `nft` with (its own PATH may be minimal or the user's):
 * first the tools bundled with the supervisor in a container or Kubernetes pod (stage-supervisor-bin.sh
 * puts ip and nft in /opt/openshell/bin/tools, so any image works: it need not have iproute2 or
 * nftables), then the system's (the VM image has both installed).
 */
export const TOOL_PATH = "/opt/openshell/bin/tools:/usr/sbin:/usr/bin:/sbin:/bin";
