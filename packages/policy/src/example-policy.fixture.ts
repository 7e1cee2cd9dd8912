/** Upstream's complete example policy (spec §4.4), shared by the tests. */
export const EXAMPLE_POLICY_YAML = `version: 1
filesystem_policy:
  include_workdir: true
  read_only: [/usr, /lib, /proc, /dev/urandom, /app, /etc, /var/log]
  read_write: [/sandbox, /tmp, /dev/null]
landlock:
  compatibility: best_effort
process:
  run_as_user: sandbox
  run_as_group: sandbox
network_policies:
  claude_code:
    name: claude_code
    endpoints:
      - { host: api.anthropic.com, port: 443 }
      - { host: statsig.anthropic.com, port: 443 }
    binaries:
      - { path: /usr/local/bin/claude }
      - { path: /usr/bin/node }
  github_api:
    name: github-api-readonly
    endpoints:
      - host: api.github.com
        port: 443
        protocol: rest
        enforcement: enforce
        access: read-only
        deny_rules:
          - { method: GET, path: "/repos/*/secrets/**" }
    binaries:
      - { path: /usr/bin/curl }
      - { path: /usr/bin/gh }
  github_git:
    name: github-ssh-over-https
    endpoints:
      - host: github.com
        port: 443
        protocol: rest
        enforcement: enforce
        rules:
          - allow: { method: GET,  path: "/**/info/refs*" }
          - allow: { method: POST, path: "/**/git-upload-pack" }
          - allow: { method: GET, path: "/search", query: { q: "repo:*", page: { any: ["1", "2"] } } }
    binaries:
      - { path: /usr/bin/git }
  internal_db:
    name: internal
    endpoints:
      - host: db.internal.corp
        ports: [5432, 5433]
        allowed_ips: ["10.0.5.0/24"]
    binaries:
      - { path: "/usr/bin/*" }
  wildcard_cdn:
    name: cdn
    endpoints:
      - { host: "*.cdn.example.com", port: 443, tls: skip }
    binaries:
      - { path: "/home/*/.local/bin/**" }
`;
