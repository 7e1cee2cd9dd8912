export const GATEWAY_USAGE = `Usage: openshell-gateway --db-url URL [options]

The OpenShell control plane: gRPC, Connect and gRPC-web API, /connect/ssh and health on one port.

Required:
  --db-url URL                 sqlite:PATH or sqlite::memory:             [OPENSHELL_DB_URL]

Listening:
  --port N                     API port (default 8080)                    [OPENSHELL_SERVER_PORT]
  --bind-address ADDR          address to bind (default 0.0.0.0)          [OPENSHELL_BIND_ADDRESS]
  --health-port N              extra plain-HTTP health port, 0 = off      [OPENSHELL_HEALTH_PORT]
  --disable-tls                plaintext: h2c + HTTP/1.1 on one port      [OPENSHELL_DISABLE_TLS]
  --tls-cert FILE --tls-key FILE --tls-client-ca FILE
                               TLS with ALPN h2/http1.1; mTLS by default  [OPENSHELL_TLS_CERT/_KEY/_CLIENT_CA]
  --disable-gateway-auth       TLS without client certificates            [OPENSHELL_DISABLE_GATEWAY_AUTH]

Compute:
  --drivers NAME               kubernetes | vm (default kubernetes)       [OPENSHELL_DRIVERS]
  --driver-dir DIR             where openshell-driver-<name> is looked up first [OPENSHELL_DRIVER_DIR]
  --driver-state-dir DIR       driver state (default ~/.local/state/openshell/drivers/<name>)
  --vm-driver-state-dir DIR    state of the vm driver                     [OPENSHELL_VM_DRIVER_STATE_DIR]
  --vm-vcpus N --vm-mem-mib N  VM size (default 2, 2048)
  --vm-tls-ca/--vm-tls-cert/--vm-tls-key FILE  guest TLS files when --grpc-endpoint is https://
  --grpc-endpoint URL          URL sandboxes dial back (required for vm)  [OPENSHELL_GRPC_ENDPOINT]
  --sandbox-namespace NAME     namespace recorded on sandboxes (default "default")
  --sandbox-image IMAGE        default sandbox image for the kubernetes driver
  --sandbox-image-pull-policy POLICY

SSH:
  --ssh-gateway-host HOST      host returned by CreateSshSession (default 127.0.0.1)
  --ssh-gateway-port N         port returned by CreateSshSession (0 = --port)
  --ssh-connect-path PATH      default /connect/ssh
  --ssh-handshake-secret S     accepted for compatibility; the relay path does not use it

Other:
  --log-level LEVEL            trace|debug|info|warn|error (default info) [OPENSHELL_LOG_LEVEL]
  -h, --help                   this text
  -V, --version                print the version
`;
