#!/usr/bin/env bash
# kube-create-pki.sh: creates the in-cluster gateway's PKI Secrets ONCE, before the first
# `kubectl apply -k deploy/kubernetes`, and reuses them on every later run (restart, upgrade,
# re-apply): a Secret that exists is never replaced, so the gateway keeps its CA and every
# registered CLI and running sandbox keeps working.
#
#   bash scripts/kube-create-pki.sh [--namespace NS] [--san NAME]... [--pki-dir DIR] [--out DIR]
#                                   [--context CTX] [--kubeconfig FILE] [--generate-only]
#
#   --namespace NS     namespace of the gateway (default openshell)
#   --san NAME         one more DNS name or IP the gateway's server certificate names (repeatable):
#                      the host clients use, e.g. a LoadBalancer's address. Always named: localhost,
#                      127.0.0.1, ::1 (kubectl port-forward), openshell, openshell.NS,
#                      openshell.NS.svc, openshell.NS.svc.cluster.local, host.openshell.internal
#   --pki-dir DIR      where the PKI files are (ca.crt ca.key server.crt server.key client.crt
#                      client.key, the layout `openshell gateway start` uses): taken from there when
#                      all exist, else generated there (0700 dir, keys 0600). Keep it to issue more
#                      certificates later. Default: a temporary directory, removed at the end (the CA
#                      key is then kept nowhere; the cluster never needs it)
#   --out DIR          write the client bundle for `openshell gateway add` to DIR: ca.crt, tls.crt,
#                      tls.key (from the cluster's openshell-client-tls, so also when reused)
#   --context CTX, --kubeconfig FILE   passed to kubectl
#   --generate-only    only make the PKI in --pki-dir; no kubectl
#
# Secrets (as upstream OpenShell): openshell-server-tls (tls.crt, tls.key), openshell-server-client-ca
# (ca.crt), openshell-client-tls (tls.crt, tls.key, ca.crt). All three present: reused. None: created
# with `kubectl create` (which fails rather than overwrite one created meanwhile). Some: refused.
# To rotate deliberately: delete all three, run this again, `kubectl -n NS rollout restart
# statefulset/openshell`, re-add the gateway in every CLI and recreate running sandboxes.
# Certificates: ECDSA P-256, SHA-256, valid 10 years, the profile of packages/bootstrap/src/gateway-pki.ts.
# Needs openssl and kubectl. Progress goes to stderr ([kube-pki] ...).
set -Eeuo pipefail

NAMESPACE=openshell
SANS=()
PKI_DIR=
OUT_DIR=
GENERATE_ONLY=0
KUBECTL_ARGS=()
VALIDITY_DAYS=3650
SECRETS=(openshell-server-tls openshell-server-client-ca openshell-client-tls)

log() { printf '[kube-pki] %s\n' "$*" >&2; }
die() {
  printf '[kube-pki] error: %s\n' "$*" >&2
  exit 1
}
usage() { sed -n '2,/^set -Eeuo/p' "${BASH_SOURCE[0]}" | sed '$d; s/^# \{0,1\}//'; }

while [ $# -gt 0 ]; do
  case "$1" in
    --namespace | --san | --pki-dir | --out | --context | --kubeconfig)
      [ $# -ge 2 ] && [ -n "$2" ] || die "$1 needs a value"
      case "$1" in
        --namespace) NAMESPACE=$2 ;;
        --san) SANS+=("$2") ;;
        --pki-dir) PKI_DIR=$2 ;;
        --out) OUT_DIR=$2 ;;
        --context | --kubeconfig) KUBECTL_ARGS+=("$1" "$2") ;;
      esac
      shift 2
      ;;
    --generate-only) GENERATE_ONLY=1 && shift ;;
    -h | --help) usage && exit 0 ;;
    *) die "unknown argument '$1' (see --help)" ;;
  esac
done
command -v openssl >/dev/null || die "openssl is not installed (apt-get install openssl)"
if [ "$GENERATE_ONLY" = 1 ]; then
  [ -n "$PKI_DIR" ] || die "--generate-only needs --pki-dir DIR"
else
  command -v kubectl >/dev/null || die "kubectl is not installed (apt-get install kubernetes-client)"
fi

WORK=$(mktemp -d)
trap 'rm -rf "$WORK"' EXIT
kube() { kubectl "${KUBECTL_ARGS[@]}" --namespace "$NAMESPACE" "$@"; }
# An object rendered locally (`kubectl create KIND ... --dry-run=client`), labelled, then created:
# `create` (unlike `apply`) fails on one that appeared meanwhile instead of replacing it.
# --validate=false: kubectl made the object itself (and so no OpenAPI download is needed).
create_once() {
  kube create "$@" --dry-run=client -o yaml | kube label --local -f - -o yaml app.kubernetes.io/part-of=openshell |
    kube create --validate=false -f - >/dev/null
}

# --- PKI files ----------------------------------------------------------------------------------
new_key() { openssl genpkey -algorithm EC -pkeyopt ec_paramgen_curve:P-256 -out "$1" 2>/dev/null; }
serial() { printf '0x%s' "$(openssl rand -hex 16 | sed 's/^./0/')"; } # positive, 16 bytes
san_list() {
  local out=() name
  for name in localhost 127.0.0.1 ::1 host.openshell.internal openshell "openshell.$NAMESPACE" \
    "openshell.$NAMESPACE.svc" "openshell.$NAMESPACE.svc.cluster.local" "${SANS[@]}"; do
    if [[ $name =~ ^[0-9.]+$ || $name == *:* ]]; then
      name=${name#[}
      out+=("IP:${name%]}")
    else
      out+=("DNS:$name")
    fi
  done
  (IFS=,; printf '%s' "${out[*]}")
}
issue_leaf() { # name cn eku [san]
  local dir=$1 name=$2 cn=$3 eku=$4 san=${5:-}
  new_key "$dir/$name.key"
  openssl req -new -key "$dir/$name.key" -subj "/CN=$cn" -out "$WORK/$name.csr"
  {
    echo "basicConstraints = critical, CA:FALSE"
    echo "keyUsage = critical, digitalSignature"
    echo "extendedKeyUsage = $eku"
    echo "subjectKeyIdentifier = hash"
    echo "authorityKeyIdentifier = keyid"
    if [ -n "$san" ]; then echo "subjectAltName = $san"; fi
  } >"$WORK/$name.ext"
  openssl x509 -req -in "$WORK/$name.csr" -CA "$dir/ca.crt" -CAkey "$dir/ca.key" -set_serial "$(serial)" \
    -days "$VALIDITY_DAYS" -sha256 -extfile "$WORK/$name.ext" -out "$dir/$name.crt" 2>/dev/null
}
generate_pki() {
  local dir=$1
  mkdir -p "$dir" && chmod 0700 "$dir"
  umask 077
  new_key "$dir/ca.key"
  openssl req -x509 -new -key "$dir/ca.key" -subj "/CN=openshell-$NAMESPACE CA" -days "$VALIDITY_DAYS" -sha256 \
    -set_serial "$(serial)" -addext "basicConstraints = critical, CA:TRUE, pathlen:0" \
    -addext "keyUsage = critical, keyCertSign, cRLSign" -addext "subjectKeyIdentifier = hash" \
    -out "$dir/ca.crt"
  issue_leaf "$dir" server openshell-server serverAuth "$(san_list)"
  issue_leaf "$dir" client openshell-client clientAuth
  chmod 0644 "$dir/ca.crt" "$dir/server.crt" "$dir/client.crt"
  umask 022
}
check_pki() {
  local dir=$1 f
  for f in ca.crt server.crt server.key client.crt client.key; do
    [ -s "$dir/$f" ] || die "$dir/$f is missing: a --pki-dir must hold all of ca.crt server.crt server.key client.crt client.key (or none)"
  done
  openssl verify -CAfile "$dir/ca.crt" "$dir/server.crt" "$dir/client.crt" >/dev/null ||
    die "the certificates in $dir were not issued by its ca.crt"
  for f in server client; do
    [ "$(openssl x509 -in "$dir/$f.crt" -noout -pubkey | openssl sha256)" = "$(openssl pkey -in "$dir/$f.key" -pubout | openssl sha256)" ] ||
      die "$dir/$f.key does not match $dir/$f.crt"
  done
}
ensure_pki() {
  local dir=$1
  if [ -e "$dir/ca.crt" ] || [ -e "$dir/server.crt" ] || [ -e "$dir/client.crt" ]; then
    check_pki "$dir"
    log "using the PKI in $dir"
  else
    log "generating a new CA, server and client certificate in $dir"
    generate_pki "$dir"
    check_pki "$dir"
  fi
}

if [ "$GENERATE_ONLY" = 1 ]; then
  ensure_pki "$PKI_DIR"
  exit 0
fi

# --- Secrets ------------------------------------------------------------------------------------
secret_exists() { # exit 0 = exists, 1 = absent; anything else (unreachable, forbidden) dies
  local out
  out=$(kube get secret "$1" --ignore-not-found -o name 2>"$WORK/err") ||
    die "cannot read Secret $NAMESPACE/$1: $(cat "$WORK/err")"
  [ -n "$out" ]
}

ns=$(kubectl "${KUBECTL_ARGS[@]}" get namespace "$NAMESPACE" --ignore-not-found -o name 2>"$WORK/err") ||
  die "cannot reach the cluster or read namespace $NAMESPACE: $(cat "$WORK/err")"
if [ -z "$ns" ]; then
  log "creating namespace $NAMESPACE"
  create_once namespace "$NAMESPACE"
fi
present=()
absent=()
for s in "${SECRETS[@]}"; do
  if secret_exists "$s"; then present+=("$s"); else absent+=("$s"); fi
done

if [ "${#absent[@]}" -eq 0 ]; then
  log "reusing the existing TLS Secrets in $NAMESPACE (${SECRETS[*]}); nothing created"
elif [ "${#present[@]}" -gt 0 ]; then
  die "only some of the PKI Secrets exist in $NAMESPACE (present: ${present[*]}; missing: ${absent[*]}). Not replacing any: restore the missing ones from your --pki-dir, or to start over with a new CA delete all of them (kubectl -n $NAMESPACE delete secret ${present[*]}) and run this again"
else
  dir=${PKI_DIR:-$WORK/pki}
  ensure_pki "$dir"
  create_once secret tls openshell-server-tls --cert="$dir/server.crt" --key="$dir/server.key"
  create_once secret generic openshell-server-client-ca --from-file=ca.crt="$dir/ca.crt"
  create_once secret generic openshell-client-tls --from-file=tls.crt="$dir/client.crt" \
    --from-file=tls.key="$dir/client.key" --from-file=ca.crt="$dir/ca.crt"
  log "created ${SECRETS[*]} in $NAMESPACE"
  [ -n "$PKI_DIR" ] || log "the CA key was not kept (pass --pki-dir DIR to keep it)"
fi

if [ -n "$OUT_DIR" ]; then
  mkdir -p "$OUT_DIR"
  for key in ca.crt tls.crt tls.key; do
    kube get secret openshell-client-tls -o "jsonpath={.data.${key//./\\.}}" | base64 -d >"$WORK/$key"
    [ -s "$WORK/$key" ] || die "Secret $NAMESPACE/openshell-client-tls has no $key"
  done
  install -m 0644 "$WORK/ca.crt" "$OUT_DIR/ca.crt"
  install -m 0644 "$WORK/tls.crt" "$OUT_DIR/tls.crt"
  install -m 0600 "$WORK/tls.key" "$OUT_DIR/tls.key"
  log "client bundle in $OUT_DIR: openshell gateway add https://HOST:PORT --ca-cert $OUT_DIR/ca.crt --client-cert $OUT_DIR/tls.crt --client-key $OUT_DIR/tls.key"
fi
