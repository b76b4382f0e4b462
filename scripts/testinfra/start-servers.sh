#!/usr/bin/env bash
# scripts/testinfra/start-servers.sh ENV_FILE
#
# Installs (once, cached) and starts the storage servers that the backend
# integration tests talk to, all on 127.0.0.1, waits until each one really
# answers, and writes endpoints and credentials to ENV_FILE as KEY='value'
# lines (source it with `set -a; . ENV_FILE; set +a`).
# Stop them with: scripts/testinfra/stop-servers.sh ENV_FILE
#
# Everything comes from the three registries the project's machines reach:
# the Go module proxy (go install), Debian's archive (apt) and npm.
#
#   name       backend       server
#   minio      s3            MinIO (AGPL-3.0: only ever run as a separate binary, never imported)
#   versitygw  s3            Versity S3 Gateway, posix backend
#   gcs        gs            fake-gcs-server
#   azurite    abs           Azurite, blob service only
#   sftp       sftp          OpenSSH sshd with internal-sftp, key auth
#   nats       nats          nats-server with JetStream
#   webdav     webdav        Apache httpd + mod_dav_fs, Basic auth
#   toxiproxy  fault tests   Toxiproxy, one proxy in front of each server above
#
# Environment knobs:
#   TESTINFRA_SERVERS        subset to start, space-separated (default: all of the above)
#   TESTINFRA_CACHE          install cache (default ${XDG_CACHE_HOME:-$HOME/.cache}/testinfra)
#   TESTINFRA_RUN_DIR        data, logs, keys and pid files (default: a new mktemp -d)
#   TESTINFRA_READY_TIMEOUT  seconds to wait for each server (default 90)
#   TESTINFRA_INSTALL_ONLY=1 install what is selected, start nothing
#   TESTINFRA_INSTALL_JOBS   installs run at once (default 3: npm is network-bound,
#                            two Go builds overlap their downloads with compiling)
#
# Variables written (see stop-servers.sh for the reverse):
#   TESTINFRA_RUN_DIR TESTINFRA_SERVERS
#   S3_ENDPOINT S3_SERVER S3_REGION S3_ACCESS_KEY_ID S3_SECRET_ACCESS_KEY S3_BUCKET
#   S3_FORCE_PATH_STYLE MINIO_ENDPOINT VERSITYGW_ENDPOINT
#   STORAGE_EMULATOR_HOST GCS_ENDPOINT GCS_PROJECT GCS_BUCKET
#   AZURE_STORAGE_ACCOUNT AZURE_STORAGE_KEY AZURE_BLOB_ENDPOINT
#   AZURE_STORAGE_CONNECTION_STRING AZURE_CONTAINER
#   SFTP_HOST SFTP_PORT SFTP_ADDR SFTP_USER SFTP_KEY_FILE SFTP_KNOWN_HOSTS SFTP_ROOT
#   NATS_URL NATS_USER NATS_PASSWORD NATS_MONITOR_URL
#   WEBDAV_URL WEBDAV_USER WEBDAV_PASSWORD WEBDAV_ROOT
#   TOXIPROXY_URL TOXIPROXY_{MINIO,VERSITYGW,GCS,AZURITE,SFTP,NATS,WEBDAV}_ADDR
set -euo pipefail

# ---------------------------------------------------------------------------
# Pinned versions. MinIO has no semver tags on the module proxy, hence the
# pseudo-version (a 2026-02-12 commit; the binary reports DEVELOPMENT.GOGET).
MINIO_VERSION=v0.0.0-20260212201848-7aac2a2c5b7c
VERSITYGW_VERSION=v1.8.0
FAKE_GCS_VERSION=v1.56.1
NATS_SERVER_VERSION=v2.15.2
TOXIPROXY_VERSION=v2.12.0
AZURITE_VERSION=3.37.0

ALL_SERVERS="minio versitygw gcs azurite sftp nats webdav toxiproxy"
SERVERS=" ${TESTINFRA_SERVERS:-$ALL_SERVERS} "
CACHE=${TESTINFRA_CACHE:-${XDG_CACHE_HOME:-$HOME/.cache}/testinfra}
READY_TIMEOUT=${TESTINFRA_READY_TIMEOUT:-90}
INSTALL_JOBS=${TESTINFRA_INSTALL_JOBS:-3}
HOST=127.0.0.1

# Fixed test credentials. The servers listen on loopback only; none of these
# is a secret (the Azure key is Azurite's published development key).
S3_AK=testinfra-access
S3_SK=testinfra-secret-key
S3_REGION=us-east-1
BUCKET=testbucket
GCS_PROJECT=test-project
AZ_ACCOUNT=devstoreaccount1
AZ_KEY='Eby8vdM02xNOcqFlqUwJPLlmEtlCDXJ1OUzFT50uSRZ6IFsuFq2UVErCz4I6tq/K1SZFPTOtr/KBHBeksoGMGw=='
AZ_CONTAINER=testcontainer
NATS_USER=testinfra
NATS_PASS=testinfra-pass
DAV_USER=testinfra
DAV_PASS=testinfra-pass
SFTP_SYSTEM_USER=testinfra-sftp   # unprivileged login user when run as root

# ---------------------------------------------------------------------------
log() { printf '[testinfra %s] %s\n' "$(date +%H:%M:%S)" "$*" >&2; }
die() { log "ERROR: $*"; exit 1; }
want() { [[ "$SERVERS" == *" $1 "* ]]; }
now() { date +%s.%N; }
since() { awk -v s="$1" -v e="$(now)" 'BEGIN{printf "%.1fs", e-s}'; }

[[ $# -eq 1 ]] || die "usage: $0 ENV_FILE"
ENV_FILE=$1
for s in $SERVERS; do [[ " $ALL_SERVERS " == *" $s "* ]] || die "unknown server '$s' (known: $ALL_SERVERS)"; done
IS_ROOT=0; [[ $(id -u) -eq 0 ]] && IS_ROOT=1
mkdir -p "$CACHE/bin" "$CACHE/logs"

# ---------------------------------------------------------------------------
# Installation. Every step is skipped when its result is already cached.

apt_install_missing() {
  local missing=() p
  for p in "$@"; do
    dpkg-query -W -f='${Status}' "$p" 2>/dev/null | grep -q 'ok installed' || missing+=("$p")
  done
  [[ ${#missing[@]} -eq 0 ]] && return 0
  [[ $IS_ROOT -eq 1 ]] || die "missing Debian packages: ${missing[*]} (install them as root)"
  local t0 made_policy=0 rc=0; t0=$(now)
  log "apt: installing ${missing[*]}"
  # Keep the packages' maintainer scripts from starting system-wide daemons
  # (sshd on :22, apache on :80): policy-rc.d exit 101 = "not allowed".
  if [[ ! -e /usr/sbin/policy-rc.d ]]; then
    printf '#!/bin/sh\nexit 101\n' > /usr/sbin/policy-rc.d && chmod +x /usr/sbin/policy-rc.d && made_policy=1
  fi
  { apt-get update -q && DEBIAN_FRONTEND=noninteractive apt-get install -y -q --no-install-recommends "${missing[@]}"; } \
    > "$CACHE/logs/apt.log" 2>&1 < /dev/null || rc=$?
  [[ $made_policy -eq 1 ]] && rm -f /usr/sbin/policy-rc.d
  [[ $rc -eq 0 ]] || { tail -20 "$CACHE/logs/apt.log" >&2; die "apt-get failed"; }
  log "apt: done in $(since "$t0")"
}

# go_install NAME PACKAGE VERSION [BUILT_NAME] -> $CACHE/bin/NAME-VERSION.
# Built outside the project (cd $CACHE, GOWORK=off, empty GOFLAGS) so that
# neither the project's go.mod nor its settings leak into the servers.
go_install() {
  local name=$1 pkg=$2 ver=$3 built=${4:-$1}
  local dest="$CACHE/bin/$name-$ver" t0 tmp
  [[ -x "$dest" ]] && return 0
  t0=$(now); tmp=$(mktemp -d "$CACHE/gobin.XXXXXX")
  log "go install $pkg@$ver ..."
  if ! (cd "$CACHE" && GOBIN="$tmp" GOFLAGS='' GOWORK=off CGO_ENABLED=0 \
        go install -trimpath -ldflags='-s -w' "$pkg@$ver") > "$CACHE/logs/install-$name.log" 2>&1 < /dev/null; then
    rm -rf "$tmp"; tail -20 "$CACHE/logs/install-$name.log" >&2; log "go install of $name failed"; return 1
  fi
  mv "$tmp/$built" "$dest" && rm -rf "$tmp"
  log "go install $name: done in $(since "$t0")"
}

AZURITE_DIR="$CACHE/npm/azurite-$AZURITE_VERSION"
AZURITE_BIN="$AZURITE_DIR/node_modules/.bin/azurite-blob"
npm_install_azurite() {
  [[ -x "$AZURITE_BIN" ]] && return 0
  local t0 tmp; t0=$(now)
  log "npm install azurite@$AZURITE_VERSION ..."
  mkdir -p "$CACHE/npm"; tmp=$(mktemp -d "$CACHE/npm/azurite.XXXXXX")
  if ! npm install --prefix "$tmp" --no-audit --no-fund --loglevel=error "azurite@$AZURITE_VERSION" \
       > "$CACHE/logs/install-azurite.log" 2>&1 < /dev/null; then
    rm -rf "$tmp"; tail -20 "$CACHE/logs/install-azurite.log" >&2; log "npm install of azurite failed"; return 1
  fi
  [[ -x "$AZURITE_BIN" ]] || rm -rf "$AZURITE_DIR"       # drop a broken copy
  mv -T "$tmp" "$AZURITE_DIR" 2>/dev/null || rm -rf "$tmp" # a parallel run won the race: keep its copy
  log "npm install azurite: done in $(since "$t0")"
}

# A small job pool: at most INSTALL_JOBS installs at once, every failure counted.
declare -A JOB_NAME=()
JOBS_RUNNING=0 JOBS_FAILED=0
reap_job() {
  local pid rc=0
  wait -n -p pid || rc=$?
  JOBS_RUNNING=$((JOBS_RUNNING - 1))
  [[ $rc -eq 0 ]] || { JOBS_FAILED=$((JOBS_FAILED + 1)); log "install of ${JOB_NAME[$pid]:-?} failed"; }
}
install_job() { # NAME CMD...
  local name=$1; shift
  while (( JOBS_RUNNING >= INSTALL_JOBS )); do reap_job; done
  "$@" & JOB_NAME[$!]=$name; JOBS_RUNNING=$((JOBS_RUNNING + 1))
}

install_all() {
  local t0; t0=$(now)
  local pkgs=(curl openssl)
  want sftp && pkgs+=(openssh-server openssh-client)
  want webdav && pkgs+=(apache2 apache2-utils)
  apt_install_missing "${pkgs[@]}"
  if want azurite; then
    command -v npm >/dev/null || die "npm not found (needed for Azurite)"
    command -v node >/dev/null || die "node not found (needed for Azurite)"
  fi
  if want minio || want versitygw || want gcs || want nats || want toxiproxy; then
    command -v go >/dev/null || die "go not found (needed to build the Go servers)"
  fi
  # Longest builds first, so the pool's tail is short.
  want azurite   && install_job azurite npm_install_azurite
  want minio     && install_job minio go_install minio github.com/minio/minio "$MINIO_VERSION"
  want versitygw && install_job versitygw go_install versitygw github.com/versity/versitygw/cmd/versitygw "$VERSITYGW_VERSION"
  want gcs       && install_job gcs go_install fake-gcs-server github.com/fsouza/fake-gcs-server "$FAKE_GCS_VERSION"
  want nats      && install_job nats go_install nats-server github.com/nats-io/nats-server/v2 "$NATS_SERVER_VERSION"
  want toxiproxy && install_job toxiproxy go_install toxiproxy-server github.com/Shopify/toxiproxy/v2/cmd/server "$TOXIPROXY_VERSION" server
  while (( JOBS_RUNNING > 0 )); do reap_job; done
  (( JOBS_FAILED == 0 )) || die "$JOBS_FAILED install(s) failed (logs: $CACHE/logs/)"
  log "install phase: $(since "$t0")"
}

install_all
[[ "${TESTINFRA_INSTALL_ONLY:-0}" == 1 ]] && exit 0

# ---------------------------------------------------------------------------
# Run directory and process handling

if [[ -n "${TESTINFRA_RUN_DIR:-}" ]]; then RUN=$TESTINFRA_RUN_DIR; mkdir -p "$RUN"; else RUN=$(mktemp -d "${TMPDIR:-/tmp}/testinfra.XXXXXX"); fi
RUN=$(cd "$RUN" && pwd -P)
[[ -z "$(ls -A "$RUN/pids" 2>/dev/null)" ]] || die "$RUN already has running servers (pids/); stop them first"
mkdir -p "$RUN/pids" "$RUN/logs" "$RUN/data"
chmod 755 "$RUN"   # www-data (webdav) and the sftp user must traverse it

ENV_LINES=()
setenv() { ENV_LINES+=("$1='$2'"); }
setenv TESTINFRA_RUN_DIR "$RUN"

USED_PORTS=" "
# pick_port VAR: a free port on 127.0.0.1 in 20000-31999, below Linux's
# ephemeral range so an outgoing connection cannot take it meanwhile.
pick_port() {
  local p
  for _ in $(seq 1 500); do
    p=$(( 20000 + (RANDOM * 32768 + RANDOM) % 12000 ))
    [[ "$USED_PORTS" == *" $p "* ]] && continue
    if ! (exec 3<>"/dev/tcp/$HOST/$p") 2>/dev/null; then
      USED_PORTS+="$p "; printf -v "$1" '%s' "$p"; return 0
    fi
  done
  die "no free port found"
}

alive() { # running and not a zombie
  local st; st=$(awk '{print $3}' "/proc/$1/stat" 2>/dev/null) || return 1
  [[ -n "$st" && "$st" != Z ]]
}

# launch NAME CMD...: run CMD in a session of its own, so its pid is also the
# id of the process group that stop-servers.sh signals.
launch() {
  local name=$1; shift
  setsid "$@" >> "$RUN/logs/$name.log" 2>&1 < /dev/null &
  LAUNCHED=$!
  echo "$LAUNCHED" > "$RUN/pids/$name.pid"
}

kill_group() {
  local pid=$1
  alive "$pid" || return 0
  kill -TERM -- "-$pid" 2>/dev/null || kill -TERM "$pid" 2>/dev/null || true
  for _ in $(seq 1 50); do alive "$pid" || return 0; sleep 0.1; done
  kill -KILL -- "-$pid" 2>/dev/null || kill -KILL "$pid" 2>/dev/null || true
}

# wait_ready NAME PID CHECK...: 0 ready, 1 the process died (worth another
# port), 2 it stayed up but never answered.
wait_ready() {
  local name=$1 pid=$2; shift 2
  local deadline=$(( $(date +%s) + READY_TIMEOUT ))
  while (( $(date +%s) < deadline )); do
    alive "$pid" || { log "$name exited during start-up; log tail:"; tail -15 "$RUN/logs/$name.log" >&2; return 1; }
    if "$@" >/dev/null 2>&1; then return 0; fi
    sleep 0.1   # polling interval of a readiness probe, not a synchronisation
  done
  log "$name not ready after ${READY_TIMEOUT}s; log tail:"; tail -15 "$RUN/logs/$name.log" >&2
  return 2
}

http_answers() { # any HTTP status at all
  local code; code=$(curl -s -o /dev/null -m 2 -w '%{http_code}' "$@") || true
  [[ -n "$code" && "$code" != 000 ]]
}
http_ok() { curl -sf -o /dev/null -m 2 "$@"; }

STARTED=()
cleanup_on_error() {
  local rc=$? f
  [[ $rc -eq 0 ]] && return
  log "start-up failed; stopping what was started (logs stay in $RUN/logs)"
  for f in "$RUN"/pids/*.pid; do [[ -e "$f" ]] && kill_group "$(cat "$f")" && rm -f "$f"; done
  # Record the run directory anyway, so stop-servers.sh ENV_FILE still cleans up.
  printf "# start-up failed\nTESTINFRA_RUN_DIR='%s'\n" "$RUN" > "$ENV_FILE" || true
  exit "$rc"
}
trap cleanup_on_error EXIT

# start NAME: run start_NAME, on a new port up to 3 times if the server died
# during start-up (it may have lost a race for its port).
start() {
  local name=$1 try t0 rc
  for try in 1 2 3; do
    t0=$(now); rc=0
    "start_$name" || rc=$?
    if [[ $rc -eq 0 ]]; then
      STARTED+=("$name"); log "$name ready in $(since "$t0") (pid $(cat "$RUN/pids/$name.pid"))"; return 0
    fi
    [[ -e "$RUN/pids/$name.pid" ]] && kill_group "$(cat "$RUN/pids/$name.pid")" && rm -f "$RUN/pids/$name.pid"
    [[ $rc -eq 1 ]] || break
    log "$name: attempt $try failed"
  done
  die "$name did not start (log: $RUN/logs/$name.log)"
}

# ---------------------------------------------------------------------------
# Servers

S3_EMPTY_SHA=e3b0c44298fc1c149afbf4c8996fb92427ae41e4649b934ca495991b7852b855
s3_create_bucket() { # ENDPOINT BUCKET, SigV4-signed by curl
  local code
  code=$(curl -s -o /dev/null -m 10 -w '%{http_code}' -X PUT -H "x-amz-content-sha256: $S3_EMPTY_SHA" \
         --user "$S3_AK:$S3_SK" --aws-sigv4 "aws:amz:$S3_REGION:s3" "$1/$2")
  [[ "$code" == 200 || "$code" == 409 ]] || { log "create bucket $2 at $1: HTTP $code"; return 2; }
}

start_minio() {
  local port d="$RUN/data/minio"; pick_port port; mkdir -p "$d"
  launch minio env MINIO_ROOT_USER="$S3_AK" MINIO_ROOT_PASSWORD="$S3_SK" MINIO_SITE_REGION="$S3_REGION" \
    MINIO_BROWSER=off MINIO_UPDATE=off MINIO_CALLHOME_ENABLE=off \
    "$CACHE/bin/minio-$MINIO_VERSION" server --quiet --address "$HOST:$port" "$d"
  wait_ready minio "$LAUNCHED" http_ok "http://$HOST:$port/minio/health/ready" || return $?
  s3_create_bucket "http://$HOST:$port" "$BUCKET" || return $?
  MINIO_PORT=$port
}

start_versitygw() {
  local port d="$RUN/data/versitygw"; pick_port port; mkdir -p "$d"
  launch versitygw "$CACHE/bin/versitygw-$VERSITYGW_VERSION" --port "$HOST:$port" --access "$S3_AK" \
    --secret "$S3_SK" --region "$S3_REGION" --quiet posix "$d"
  wait_ready versitygw "$LAUNCHED" http_answers "http://$HOST:$port/" || return $?
  s3_create_bucket "http://$HOST:$port" "$BUCKET" || return $?
  VERSITYGW_PORT=$port
}

start_gcs() {
  # -public-host without a port: requests that arrive through the Toxiproxy
  # port are served too (with host:port there, ranged reads through the
  # proxy fail with "object doesn't exist").
  local port d="$RUN/data/gcs"; pick_port port; mkdir -p "$d"
  launch gcs "$CACHE/bin/fake-gcs-server-$FAKE_GCS_VERSION" -scheme http -host "$HOST" -port "$port" \
    -backend filesystem -filesystem-root "$d" -public-host "$HOST" -external-url "http://$HOST:$port" \
    -log-level warn
  wait_ready gcs "$LAUNCHED" http_ok "http://$HOST:$port/_internal/healthcheck" || return $?
  curl -sf -o /dev/null -m 10 -X POST -H 'Content-Type: application/json' -d "{\"name\":\"$BUCKET\"}" \
    "http://$HOST:$port/storage/v1/b?project=$GCS_PROJECT" || return 2
  GCS_PORT=$port
}

azure_create_container() { # ENDPOINT(with account) CONTAINER, Shared Key signed
  local date ver=2021-08-06 sts hexkey sig code
  date=$(LC_ALL=C date -u '+%a, %d %b %Y %H:%M:%S GMT')
  sts=$(printf 'PUT\n\n\n\n\n\n\n\n\n\n\n\nx-ms-date:%s\nx-ms-version:%s\n/%s/%s/%s\nrestype:container' \
        "$date" "$ver" "$AZ_ACCOUNT" "$AZ_ACCOUNT" "$2")
  hexkey=$(printf '%s' "$AZ_KEY" | base64 -d | od -An -tx1 -v | tr -d ' \n')
  sig=$(printf '%s' "$sts" | openssl dgst -sha256 -mac HMAC -macopt "hexkey:$hexkey" -binary | base64 -w0)
  code=$(curl -s -o /dev/null -m 10 -w '%{http_code}' -X PUT -H "x-ms-date: $date" -H "x-ms-version: $ver" \
         -H 'Content-Length: 0' -H "Authorization: SharedKey $AZ_ACCOUNT:$sig" "$1/$2?restype=container")
  [[ "$code" == 201 || "$code" == 409 ]] || { log "create container $2: HTTP $code"; return 2; }
}

azurite_logged_port() { # the port Azurite reports once it listens
  grep -o "listens on http://$HOST:[0-9]*" "$RUN/logs/azurite.log" | grep -o '[0-9]*$'
}

start_azurite() {
  # --blobPort 0: the kernel picks the port and Azurite logs it.
  # --skipApiVersionCheck: current Azure SDKs send a newer x-ms-version than
  # Azurite knows and would get 400 on every call. No telemetry: no outbound calls.
  local d="$RUN/data/azurite" port pid; mkdir -p "$d"
  : > "$RUN/logs/azurite.log"
  launch azurite node "$AZURITE_BIN" --blobHost "$HOST" --blobPort 0 \
    --location "$d" --disableTelemetry --skipApiVersionCheck
  pid=$LAUNCHED
  wait_ready azurite "$pid" azurite_logged_port || return $?
  port=$(azurite_logged_port)
  wait_ready azurite "$pid" http_answers "http://$HOST:$port/$AZ_ACCOUNT?comp=list" || return $?
  azure_create_container "http://$HOST:$port/$AZ_ACCOUNT" "$AZ_CONTAINER" || return $?
  AZURITE_PORT=$port
}

sftp_login() { # DIR PORT USER: a real key-based SFTP session, host key checked
  echo pwd | sftp -b - -q -i "$1/client_ed25519" -P "$2" -o BatchMode=yes -o IdentitiesOnly=yes \
    -o StrictHostKeyChecking=yes -o UserKnownHostsFile="$1/known_hosts" -o ConnectTimeout=2 "$3@$HOST"
}

start_sftp() {
  local port s="$RUN/sftp" user pam
  pick_port port
  mkdir -p "$s/data"
  if [[ ! -e "$s/host_ed25519" ]]; then
    ssh-keygen -q -t ed25519 -N '' -C testinfra-host -f "$s/host_ed25519"
    ssh-keygen -q -t ed25519 -N '' -C testinfra-client -f "$s/client_ed25519"
  fi
  cp "$s/client_ed25519.pub" "$s/authorized_keys"; chmod 644 "$s/authorized_keys"
  if [[ $IS_ROOT -eq 1 ]]; then
    # Log in as an unprivileged system user: a test with a wrong path cannot
    # damage the machine. '*' = no password but not locked (sshd refuses locked).
    if ! id "$SFTP_SYSTEM_USER" >/dev/null 2>&1; then
      useradd --system --no-create-home --home-dir /nonexistent --shell /usr/sbin/nologin "$SFTP_SYSTEM_USER"
    fi
    usermod -p '*' "$SFTP_SYSTEM_USER"
    chown "$SFTP_SYSTEM_USER:" "$s/data"
    mkdir -p /run/sshd   # privilege separation directory
    user=$SFTP_SYSTEM_USER; pam=no
  else
    # Unprivileged sshd can log in only its own user, and needs PAM for the
    # account check because it cannot read /etc/shadow.
    user=$(id -un); pam=yes
  fi
  cat > "$s/sshd_config" <<EOF
ListenAddress $HOST:$port
HostKey $s/host_ed25519
PidFile $s/sshd.pid
AuthorizedKeysFile $s/authorized_keys
StrictModes no
PubkeyAuthentication yes
PasswordAuthentication no
KbdInteractiveAuthentication no
UsePAM $pam
PermitRootLogin no
AllowUsers $user
AllowTcpForwarding no
AllowAgentForwarding no
X11Forwarding no
PermitTTY no
PrintMotd no
MaxStartups 100:30:200
MaxSessions 100
LoginGraceTime 30
Subsystem sftp internal-sftp
ForceCommand internal-sftp -d $s/data
EOF
  printf '[%s]:%s %s\n' "$HOST" "$port" "$(cut -d' ' -f1-2 "$s/host_ed25519.pub")" > "$s/known_hosts"
  launch sftp /usr/sbin/sshd -D -e -f "$s/sshd_config"
  wait_ready sftp "$LAUNCHED" sftp_login "$s" "$port" "$user" || return $?
  SFTP_PORT=$port SFTP_LOGIN=$user
}

start_nats() {
  local port mport d="$RUN/data/nats"; pick_port port; pick_port mport; mkdir -p "$d"
  launch nats "$CACHE/bin/nats-server-$NATS_SERVER_VERSION" -a "$HOST" -p "$port" -m "$mport" \
    -js -sd "$d" --user "$NATS_USER" --pass "$NATS_PASS"
  wait_ready nats "$LAUNCHED" http_ok "http://$HOST:$mport/healthz?js-enabled-only=true" || return $?
  NATS_PORT=$port NATS_MPORT=$mport
}

dav_propfind() { # PORT: an authenticated PROPFIND answers 207 Multi-Status
  local code
  code=$(curl -s -o /dev/null -m 2 -w '%{http_code}' -u "$DAV_USER:$DAV_PASS" -X PROPFIND -H 'Depth: 0' "http://$HOST:$1/")
  [[ "$code" == 207 ]]
}

start_webdav() {
  local port w="$RUN/webdav" m=/usr/lib/apache2/modules userconf=""
  pick_port port
  mkdir -p "$w/data" "$w/lock" "$w/run" "$w/logs"
  /usr/bin/htpasswd -bc "$w/htpasswd" "$DAV_USER" "$DAV_PASS" 2>/dev/null; chmod 644 "$w/htpasswd"
  if [[ $IS_ROOT -eq 1 ]]; then
    chown www-data: "$w/data" "$w/lock"
    userconf=$'User www-data\nGroup www-data'
  fi
  cat > "$w/httpd.conf" <<EOF
ServerRoot $w
ServerName $HOST
Listen $HOST:$port
PidFile $w/run/httpd.pid
DefaultRuntimeDir $w/run
ErrorLog $w/logs/error.log
LogLevel warn
LoadModule mpm_event_module $m/mod_mpm_event.so
LoadModule authz_core_module $m/mod_authz_core.so
LoadModule authz_user_module $m/mod_authz_user.so
LoadModule authn_core_module $m/mod_authn_core.so
LoadModule authn_file_module $m/mod_authn_file.so
LoadModule auth_basic_module $m/mod_auth_basic.so
LoadModule dav_module $m/mod_dav.so
LoadModule dav_fs_module $m/mod_dav_fs.so
$userconf
StartServers 1
ServerLimit 4
ThreadsPerChild 25
MaxRequestWorkers 100
KeepAliveTimeout 30
LimitRequestBody 0
DavLockDB $w/lock/DavLock
DocumentRoot $w/data
<Directory />
  AllowOverride None
  Require all denied
</Directory>
<Directory $w/data>
  Dav On
  AuthType Basic
  AuthName testinfra
  AuthUserFile $w/htpasswd
  Require valid-user
</Directory>
EOF
  launch webdav /usr/sbin/apache2 -f "$w/httpd.conf" -DFOREGROUND
  wait_ready webdav "$LAUNCHED" dav_propfind "$port" || return $?
  WEBDAV_PORT=$port
}

start_toxiproxy() {
  local port t="$RUN/toxiproxy"; pick_port port; mkdir -p "$t"
  echo '[]' > "$t/proxies.json"
  launch toxiproxy "$CACHE/bin/toxiproxy-server-$TOXIPROXY_VERSION" -host "$HOST" -port "$port" -config "$t/proxies.json"
  wait_ready toxiproxy "$LAUNCHED" http_ok "http://$HOST:$port/version" || return $?
  TOXIPROXY_PORT=$port
}

# toxi_proxy NAME UPSTREAM_PORT ENV_VAR: a proxy on a kernel-chosen loopback port
toxi_proxy() {
  local out listen
  out=$(curl -sf -m 10 -X POST "http://$HOST:$TOXIPROXY_PORT/proxies" \
        -d "{\"name\":\"$1\",\"listen\":\"$HOST:0\",\"upstream\":\"$HOST:$2\",\"enabled\":true}") \
    || die "toxiproxy: cannot create proxy $1"
  listen=$(printf '%s' "$out" | grep -o '"listen":"[^"]*"' | cut -d'"' -f4)
  [[ -n "$listen" ]] || die "toxiproxy: no listen address for proxy $1"
  setenv "$3" "$listen"
}

# ---------------------------------------------------------------------------
# Start, then write the environment

T_START=$(now)
for s in $ALL_SERVERS; do want "$s" && start "$s"; done

if [[ -n "${MINIO_PORT:-}" ]]; then
  setenv S3_ENDPOINT "http://$HOST:$MINIO_PORT"; setenv S3_SERVER minio
  setenv MINIO_ENDPOINT "http://$HOST:$MINIO_PORT"
elif [[ -n "${VERSITYGW_PORT:-}" ]]; then
  setenv S3_ENDPOINT "http://$HOST:$VERSITYGW_PORT"; setenv S3_SERVER versitygw
fi
if [[ -n "${VERSITYGW_PORT:-}" ]]; then
  setenv VERSITYGW_ENDPOINT "http://$HOST:$VERSITYGW_PORT"
fi
if [[ -n "${MINIO_PORT:-}${VERSITYGW_PORT:-}" ]]; then
  setenv S3_REGION "$S3_REGION"; setenv S3_ACCESS_KEY_ID "$S3_AK"; setenv S3_SECRET_ACCESS_KEY "$S3_SK"
  setenv S3_BUCKET "$BUCKET"; setenv S3_FORCE_PATH_STYLE true
fi
if [[ -n "${GCS_PORT:-}" ]]; then
  setenv STORAGE_EMULATOR_HOST "$HOST:$GCS_PORT"
  setenv GCS_ENDPOINT "http://$HOST:$GCS_PORT/storage/v1/"
  setenv GCS_PROJECT "$GCS_PROJECT"; setenv GCS_BUCKET "$BUCKET"
fi
if [[ -n "${AZURITE_PORT:-}" ]]; then
  setenv AZURE_STORAGE_ACCOUNT "$AZ_ACCOUNT"; setenv AZURE_STORAGE_KEY "$AZ_KEY"
  setenv AZURE_BLOB_ENDPOINT "http://$HOST:$AZURITE_PORT/$AZ_ACCOUNT"
  setenv AZURE_STORAGE_CONNECTION_STRING "DefaultEndpointsProtocol=http;AccountName=$AZ_ACCOUNT;AccountKey=$AZ_KEY;BlobEndpoint=http://$HOST:$AZURITE_PORT/$AZ_ACCOUNT;"
  setenv AZURE_CONTAINER "$AZ_CONTAINER"
fi
if [[ -n "${SFTP_PORT:-}" ]]; then
  setenv SFTP_HOST "$HOST"; setenv SFTP_PORT "$SFTP_PORT"; setenv SFTP_ADDR "$HOST:$SFTP_PORT"
  setenv SFTP_USER "$SFTP_LOGIN"; setenv SFTP_KEY_FILE "$RUN/sftp/client_ed25519"
  setenv SFTP_KNOWN_HOSTS "$RUN/sftp/known_hosts"; setenv SFTP_ROOT "$RUN/sftp/data"
fi
if [[ -n "${NATS_PORT:-}" ]]; then
  setenv NATS_URL "nats://$HOST:$NATS_PORT"; setenv NATS_USER "$NATS_USER"; setenv NATS_PASSWORD "$NATS_PASS"
  setenv NATS_MONITOR_URL "http://$HOST:$NATS_MPORT"
fi
if [[ -n "${WEBDAV_PORT:-}" ]]; then
  setenv WEBDAV_URL "http://$HOST:$WEBDAV_PORT"; setenv WEBDAV_USER "$DAV_USER"; setenv WEBDAV_PASSWORD "$DAV_PASS"
  setenv WEBDAV_ROOT "$RUN/webdav/data"
fi
if [[ -n "${TOXIPROXY_PORT:-}" ]]; then
  setenv TOXIPROXY_URL "http://$HOST:$TOXIPROXY_PORT"
  [[ -n "${MINIO_PORT:-}" ]]     && toxi_proxy minio "$MINIO_PORT" TOXIPROXY_MINIO_ADDR
  [[ -n "${VERSITYGW_PORT:-}" ]] && toxi_proxy versitygw "$VERSITYGW_PORT" TOXIPROXY_VERSITYGW_ADDR
  [[ -n "${GCS_PORT:-}" ]]       && toxi_proxy gcs "$GCS_PORT" TOXIPROXY_GCS_ADDR
  [[ -n "${AZURITE_PORT:-}" ]]   && toxi_proxy azurite "$AZURITE_PORT" TOXIPROXY_AZURITE_ADDR
  [[ -n "${SFTP_PORT:-}" ]]      && toxi_proxy sftp "$SFTP_PORT" TOXIPROXY_SFTP_ADDR
  [[ -n "${NATS_PORT:-}" ]]      && toxi_proxy nats "$NATS_PORT" TOXIPROXY_NATS_ADDR
  [[ -n "${WEBDAV_PORT:-}" ]]    && toxi_proxy webdav "$WEBDAV_PORT" TOXIPROXY_WEBDAV_ADDR
fi
setenv TESTINFRA_SERVERS "${STARTED[*]}"

mkdir -p "$(dirname "$ENV_FILE")"
printf '%s\n' "# written by scripts/testinfra/start-servers.sh; stop with: scripts/testinfra/stop-servers.sh $ENV_FILE" \
  "${ENV_LINES[@]}" > "$ENV_FILE.tmp.$$"
mv "$ENV_FILE.tmp.$$" "$ENV_FILE"
trap - EXIT
log "started ${STARTED[*]:-nothing} in $(since "$T_START"); environment in $ENV_FILE"
