#!/usr/bin/env bash
# Proves the Dockerfile without a container engine: performs its steps in a clean Debian
# bookworm root made by `debootstrap` from Debian's packages, entered with chroot, then starts
# the image's CMD there and wants `GET /readyz` to answer 200.
#
#   cargo build --release -p api --bin webcall     # the build stage's compile, on the host
#   scripts/dockerfile-in-debootstrap.sh           # the runtime stage: RUN, COPY, USER, CMD
#   scripts/dockerfile-in-debootstrap.sh --build-stage   # the build stage's packages only
#   scripts/dockerfile-in-debootstrap.sh --refresh # make the cached root again first
#
# The runtime stage (the last FROM, debian:bookworm-slim) is read from the Dockerfile, so the
# Dockerfile as it is now is what gets tested: its RUN lines run verbatim with /bin/sh -c,
# WORKDIR, ENV, COPY (the binary from WEBCALL_BIN, default target/release/webcall, and the
# build context's files) and USER are applied as Docker would, and CMD runs as that user.
# Then `ldd` inside the root must resolve every library of the binary, and the server must
# serve /readyz (database up) and / (the web app from STATIC_DIR).
#
# --build-stage runs the build stage's RUN lines (its apt-get line) in a fresh root instead
# and checks that pkg-config finds what the crates link (opus, openssl). It does not compile:
# the RUN line that calls cargo and the `COPY . .` it needs are skipped, because that step is
# `cargo build --release -p api --bin webcall` on Debian bookworm with those packages and a
# C++ compiler (the rust image has one), which is what the command above does on the host.
#
# The pristine root (debootstrap --variant=minbase, then the tweaks the debian:bookworm-slim
# image has) is cached as a tarball in WEBCALL_DEBOOTSTRAP_CACHE (default
# ~/.cache/webcall/debootstrap/bookworm-slim); each run unpacks a fresh copy and deletes it.
# DEBIAN_MIRROR overrides http://deb.debian.org/debian. Needs root (debootstrap, chroot,
# mount), python3, curl and the network (the Dockerfile's apt-get); installs debootstrap with
# apt-get when it is missing. Runs in a private mount namespace, so no mount outlives the
# script even if it is killed. About 30 s to make the root the first time, 12 s a run after.
set -euo pipefail
umask 022
export LC_ALL=C

repo=$(cd "$(dirname "$0")/.." && pwd)
dockerfile=$repo/Dockerfile
mirror=${DEBIAN_MIRROR:-http://deb.debian.org/debian}
cache=${WEBCALL_DEBOOTSTRAP_CACHE:-$HOME/.cache/webcall/debootstrap/bookworm-slim}
pristine=$cache/root.tar
# What Docker puts in PATH (the debian image sets the same).
docker_path=/usr/local/sbin:/usr/local/bin:/usr/sbin:/usr/bin:/sbin:/bin

usage() { sed -n '2,/^set -euo/p' "$0" | sed '$d; s/^# \{0,1\}//'; }
die() { echo "error: $*" >&2; exit 1; }
step() { printf '\n==> %s\n' "$*"; }
since() { awk -v a="$1" -v b="$EPOCHREALTIME" 'BEGIN { printf "%.1f s", b - a }'; }

stage=runtime
refresh=false
for arg in "$@"; do
    case $arg in
        --build-stage) stage=build ;;
        --refresh) refresh=true ;;
        -h | --help) usage; exit 0 ;;
        *) usage >&2; exit 2 ;;
    esac
done

[ "$(id -u)" -eq 0 ] || die "run as root: debootstrap, chroot and mount need it"
for tool in python3 curl chroot unshare tar; do
    command -v "$tool" >/dev/null || die "$tool is missing"
done

# Mounts made below vanish with this namespace, whatever happens to the script; the EXIT trap
# still unmounts them so the work directory can be deleted.
if [ -z "${WEBCALL_DEBOOTSTRAP_NS:-}" ]; then
    WEBCALL_DEBOOTSTRAP_NS=1 exec unshare --mount --propagation private -- "$0" "$@"
fi

# The binary is checked before anything slow, and copied at once: a build running meanwhile
# may relink it.
if [ "$stage" = runtime ]; then
    # Relative to the current directory, else to the repository.
    bin=${WEBCALL_BIN:-target/release/webcall}
    [ -e "$bin" ] || [[ $bin == /* ]] || bin=$repo/$bin
    if [ ! -x "$bin" ]; then
        echo "error: no binary at $bin" >&2
        echo "build it first: cargo build --release -p api --bin webcall" >&2
        echo "(needs cmake, pkg-config, libopus-dev, libssl-dev and g++), or point WEBCALL_BIN at one" >&2
        exit 1
    fi
fi

work=$(mktemp -d /tmp/webcall-dockerfile.XXXXXX)
mounts=()
server_pid=
cleanup() {
    stop_server
    # Anything still running inside a root (a RUN step's daemon, say) goes before its mounts.
    local proc i
    for proc in /proc/[0-9]*; do
        if [[ $(readlink "$proc/root" 2>/dev/null) == "$work"/* ]]; then
            kill -KILL "${proc#/proc/}" 2>/dev/null || true
        fi
    done
    for ((i = ${#mounts[@]} - 1; i >= 0; i--)); do
        umount "${mounts[i]}" 2>/dev/null || umount -l "${mounts[i]}" || true
    done
    # Never delete through a mount (a /dev or /proc left behind would be the host's).
    if awk -v w="$work/" 'index($5, w) == 1 { found = 1 } END { exit !found }' /proc/self/mountinfo; then
        echo "left $work in place: something is still mounted under it" >&2
    else
        rm -rf --one-file-system "$work"
    fi
}
trap cleanup EXIT
trap 'exit 130' INT
trap 'exit 143' TERM

if [ "$stage" = runtime ]; then
    cp "$bin" "$work/webcall"
    bin=$work/webcall
fi

stop_server() {
    [ -n "$server_pid" ] || return 0
    kill -TERM "$server_pid" 2>/dev/null || true
    local _
    for _ in $(seq 1 150); do
        kill -0 "$server_pid" 2>/dev/null || break
        sleep 0.1
    done
    kill -KILL "$server_pid" 2>/dev/null || true
    server_status=0
    wait "$server_pid" 2>/dev/null || server_status=$?
    server_pid=
}

# The Dockerfile as records: for each instruction of the chosen stage, a field count and
# the fields, NUL-terminated. Anything this script can't perform faithfully is an error, so
# a Dockerfile that grows a new kind of step fails here until the script learns it.
parse_stage() {
    python3 - "$dockerfile" "$1" <<'EOF'
import json, shlex, sys

path, which = sys.argv[1:]

def fail(msg):
    sys.exit(f"{path}: {msg}")

# Logical lines: comments and blank lines dropped, backslash continuations joined.
lines, cur = [], None
for raw in open(path, encoding="utf-8"):
    text = raw.rstrip("\n")
    stripped = text.strip()
    if not stripped or stripped.startswith("#"):
        continue
    if text.rstrip().endswith("\\"):
        cur = (cur or "") + text.rstrip()[:-1]
        continue
    lines.append(((cur or "") + text).strip())
    cur = None
if cur is not None:
    lines.append(cur.strip())

stages = []
for line in lines:
    keyword, _, rest = line.partition(" ")
    keyword, rest = keyword.upper(), rest.strip()
    if keyword == "FROM":
        words = [w for w in rest.split() if not w.startswith("--platform=")]
        name = words[2] if len(words) == 3 and words[1].upper() == "AS" else ""
        stages.append({"image": words[0], "name": name, "steps": []})
    elif not stages:
        fail(f"{keyword} before the first FROM is not handled")
    else:
        stages[-1]["steps"].append((keyword, rest))
if not stages:
    fail("no FROM")

def no_substitution(keyword, value):
    if "$" in value:
        fail(f"{keyword} {value}: variable substitution is not handled by this script")
    return value

def exec_form(rest):
    return json.loads(rest) if rest.startswith("[") else ["/bin/sh", "-c", rest]

def copy_from(steps):
    for keyword, rest in steps:
        if keyword == "COPY":
            for word in rest.split():
                if word.startswith("--from="):
                    return word[len("--from="):]
    return None

final = stages[-1]
if which == "runtime":
    chosen = final
else:
    # The build stage is the one the runtime stage copies its binary from.
    source = copy_from(final["steps"])
    matches = [s for s in stages[:-1] if source is not None and s["name"] == source]
    if not matches:
        fail(f"no stage named {source!r} (the runtime stage's COPY --from)")
    chosen = matches[0]

out = sys.stdout
def emit(*fields):
    for field in fields:
        if "\0" in field:
            fail("NUL in the Dockerfile")
    out.write(f"{len(fields)}\0" + "".join(f + "\0" for f in fields))

emit("FROM", chosen["image"], chosen["name"])
for keyword, rest in chosen["steps"]:
    if keyword == "RUN":
        if rest.startswith("[") or rest.startswith("--") or "<<" in rest:
            fail(f"RUN {rest[:40]}…: only the plain shell form is handled")
        emit("RUN", rest)
    elif keyword in ("WORKDIR", "USER"):
        emit(keyword, no_substitution(keyword, rest))
    elif keyword == "ENV":
        words = shlex.split(rest)
        if "=" in words[0]:
            pairs = [w.split("=", 1) for w in words]
            if any(len(p) != 2 for p in pairs):
                fail(f"ENV {rest}: mixes KEY=VALUE and KEY VALUE")
        else:
            pairs = [(words[0], rest[len(words[0]):].strip())]
        emit("ENV", *[no_substitution("ENV", f"{k}={v}") for k, v in pairs])
    elif keyword == "COPY":
        words = rest.split()
        source, chown = "", ""
        while words and words[0].startswith("--"):
            flag = words.pop(0)
            if flag.startswith("--from="):
                source = flag[len("--from="):]
            elif flag.startswith("--chown="):
                chown = flag[len("--chown="):]
            elif flag != "--link":
                fail(f"COPY {flag}: not handled by this script")
        paths = json.loads(" ".join(words)) if words and words[0].startswith("[") else words
        if len(paths) < 2:
            fail(f"COPY {rest}: wants a source and a destination")
        emit("COPY", source, no_substitution("COPY", chown), *[no_substitution("COPY", p) for p in paths])
    elif keyword in ("CMD", "ENTRYPOINT"):
        emit(keyword, *exec_form(rest))
    elif keyword == "EXPOSE":
        emit("EXPOSE", *rest.split())
    elif keyword == "LABEL":
        pass
    else:
        fail(f"{keyword}: not handled by this script (teach it, or the test proves less)")
EOF
}

# --- the pristine root -------------------------------------------------------------------

# What the debian:bookworm-slim image has beyond a plain minbase debootstrap: apt sources with
# updates and security, no package lists (so a missing `apt-get update` fails here too), no
# daemon started by a package, and the slim variant's dpkg excludes (documentation, man pages
# and translations are neither shipped nor installed; some packages' scripts trip on that).
make_like_the_image() {
    local root=$1
    rm -f "$root/etc/apt/sources.list" "$root/etc/resolv.conf" "$root/etc/hostname"
    cat >"$root/etc/apt/sources.list.d/debian.sources" <<EOF
Types: deb
URIs: $mirror
Suites: bookworm bookworm-updates
Components: main
Signed-By: /usr/share/keyrings/debian-archive-keyring.gpg

Types: deb
URIs: http://deb.debian.org/debian-security
Suites: bookworm-security
Components: main
Signed-By: /usr/share/keyrings/debian-archive-keyring.gpg
EOF
    find "$root/var/lib/apt/lists" -type f -delete
    find "$root/var/cache/apt" -name '*.bin' -delete
    find "$root/var/cache/apt/archives" -name '*.deb' -delete
    printf '#!/bin/sh\nexit 101\n' >"$root/usr/sbin/policy-rc.d"
    chmod 755 "$root/usr/sbin/policy-rc.d"
    cat >"$root/etc/dpkg/dpkg.cfg.d/docker" <<'EOF'
path-exclude /usr/share/doc/*
path-include /usr/share/doc/*/copyright
path-exclude /usr/share/man/*
path-exclude /usr/share/groff/*
path-exclude /usr/share/info/*
path-exclude /usr/share/lintian/*
path-exclude /usr/share/linda/*
path-exclude /usr/share/locale/*
path-include /usr/share/locale/locale.alias
EOF
    find "$root/usr/share/doc" -mindepth 1 ! -type d ! -name copyright -delete
    find "$root/usr/share/man" "$root/usr/share/info" "$root/usr/share/lintian" \
        -mindepth 1 ! -type d -delete 2>/dev/null || true
    find "$root/usr/share/locale" -mindepth 1 ! -type d ! -name locale.alias -delete
}

ensure_pristine_root() {
    local t0=$EPOCHREALTIME
    if [ -f "$pristine" ] && ! $refresh; then
        echo "reusing $pristine (made $(date -r "$pristine" '+%F %T'); --refresh makes it again)"
        return
    fi
    if ! command -v debootstrap >/dev/null; then
        step "installing debootstrap"
        nice -n 19 apt-get update && nice -n 19 apt-get install -y debootstrap
    fi
    step "debootstrap --variant=minbase bookworm ($mirror)"
    mkdir -p "$cache"
    local made=$work/made
    nice -n 19 debootstrap --variant=minbase bookworm "$made" "$mirror"
    make_like_the_image "$made"
    # Written beside the cache and renamed, so a run cut short never leaves half a tarball.
    tar --numeric-owner -C "$made" -cpf "$pristine.new" .
    mv -f "$pristine.new" "$pristine"
    rm -rf --one-file-system "$made"
    echo "made $pristine in $(since "$t0")"
}

# --- a fresh root per stage ----------------------------------------------------------------

# fresh_root DIR: the pristine root unpacked into DIR, with what Docker gives a container:
# /proc, a small /dev with its own /dev/pts, a read-only /sys, and the host's resolv.conf
# for apt.
fresh_root() {
    local root=$1 node name major minor
    mkdir -p "$root"
    tar --numeric-owner -C "$root" -xpf "$pristine"
    mount -t proc -o nosuid,noexec,nodev proc "$root/proc"
    mounts+=("$root/proc")
    mount -t sysfs -o ro,nosuid,noexec,nodev sysfs "$root/sys"
    mounts+=("$root/sys")
    mount -t tmpfs -o nosuid,mode=755,size=1m tmpfs "$root/dev"
    mounts+=("$root/dev")
    for node in "null 1 3" "zero 1 5" "full 1 7" "random 1 8" "urandom 1 9" "tty 5 0"; do
        read -r name major minor <<<"$node"
        mknod -m 666 "$root/dev/$name" c "$major" "$minor"
    done
    ln -s /proc/self/fd "$root/dev/fd"
    ln -s /proc/self/fd/0 "$root/dev/stdin"
    ln -s /proc/self/fd/1 "$root/dev/stdout"
    ln -s /proc/self/fd/2 "$root/dev/stderr"
    mkdir -p "$root/dev/pts" "$root/dev/shm"
    # apt logs through a pseudo-terminal.
    mount -t devpts -o newinstance,ptmxmode=0666,mode=620 devpts "$root/dev/pts"
    mounts+=("$root/dev/pts")
    ln -s pts/ptmx "$root/dev/ptmx"
    cp -L /etc/resolv.conf "$root/etc/resolv.conf"
}

# --- performing a stage --------------------------------------------------------------------

# Set by apply_stage: what the image ends up with.
workdir=/
user=root
image_env=()
entrypoint=()
cmd=()
copied_bin=

# in_root ROOT "UID:GID GROUPS HOME" CMD...: CMD inside ROOT as Docker runs a step: that
# user, the image's ENV, WORKDIR as the current directory, nothing from this shell's
# environment, no stdin.
in_root() {
    root_command "$@"
    "${root_argv[@]}" </dev/null
}
# root_command: the same, as the array root_argv, for a command started in the background
# (chroot execs env, which execs CMD: the job's pid is the server's).
root_command() {
    local root=$1 spec groups home
    read -r spec groups home <<<"$2"
    shift 2
    root_argv=(chroot --userspec="$spec" --groups="$groups" "$root"
        /usr/bin/env -i --chdir="$workdir" PATH="$docker_path" HOME="$home" "${image_env[@]}" "$@")
}
as_root="0:0 0 /root"

# user_of ROOT SPEC: "UID:GID GROUPS HOME" for a USER value (name or name:group), looked up
# in ROOT's /etc/passwd and /etc/group as Docker does.
user_of() {
    local root=$1 spec=$2 name group uid gid groups home
    name=${spec%%:*}
    group=
    [ "$name" = "$spec" ] || group=${spec#*:}
    uid=$(chroot "$root" id -u "$name") || die "USER $spec: no such user in the image"
    groups=$(chroot "$root" id -G "$name" | tr ' ' ,)
    if [ -n "$group" ]; then
        gid=$(chroot "$root" getent group "$group" | cut -d: -f3)
        [ -n "$gid" ] || die "USER $spec: no such group in the image"
        groups=$gid
    else
        gid=$(chroot "$root" id -g "$name")
    fi
    home=$(chroot "$root" getent passwd "$name" | cut -d: -f6)
    echo "$uid:$gid $groups ${home:-/}"
}

# ignored PATH: whether .dockerignore keeps PATH out of the build context.
ignored() {
    local path=${1#./} pattern
    [ -f "$repo/.dockerignore" ] || return 1
    while IFS= read -r pattern; do
        pattern=${pattern#/}
        case $pattern in '' | '#'* | '!'*) continue ;; esac
        # shellcheck disable=SC2053 # the pattern is a glob on purpose
        [[ $path == $pattern || $path == $pattern/* ]] && return 0
        if [[ $pattern == "$path"/* ]]; then
            die ".dockerignore leaves out $pattern inside COPY $path: this script copies the whole directory"
        fi
    done <"$repo/.dockerignore"
    return 1
}

# copy_in ROOT CHOWN DEST SRC...: COPY from the build context (the repository).
copy_in() {
    local root=$1 chown=$2 dest=$3 src target
    shift 3
    [[ $dest == /* ]] || dest=${workdir%/}/$dest
    for src in "$@"; do
        ignored "$src" && die "COPY $src: .dockerignore leaves it out of the build context"
        [ -e "$repo/$src" ] || die "COPY $src: not in the repository"
        if [ -d "$repo/$src" ]; then
            target=$dest
            mkdir -p "$root$target"
            cp -R --preserve=mode,timestamps "$repo/$src/." "$root$target/"
        else
            target=$dest
            if [[ $dest == */ || $# -gt 1 ]]; then target=${dest%/}/$(basename "$src"); fi
            mkdir -p "$root$(dirname "$target")"
            cp --preserve=mode,timestamps "$repo/$src" "$root$target"
        fi
        [ -z "$chown" ] || chroot "$root" chown -R "$chown" "$target"
    done
}

# apply_stage ROOT RECORDS MODE: each instruction of the stage, in order.
apply_stage() {
    local root=$1 records=$2 mode=$3 n i field t0
    local -a f
    workdir=/ user=root image_env=() entrypoint=() cmd=() copied_bin=
    while IFS= read -r -d '' n <&3; do
        f=()
        for ((i = 0; i < n; i++)); do
            IFS= read -r -d '' field <&3
            f+=("$field")
        done
        case ${f[0]} in
            FROM)
                step "stage ${f[2]:-(unnamed)}: FROM ${f[1]} -> a fresh bookworm root in $root"
                ;;
            RUN)
                # The build stage's compile: see the header (no cargo in this root).
                if [ "$mode" = build ] && [[ ${f[1]} == *cargo* ]]; then
                    step "RUN ${f[1]}"
                    echo "skipped: the compile; on the host it is cargo build --release -p api --bin webcall"
                    continue
                fi
                step "RUN ${f[1]}"
                t0=$EPOCHREALTIME
                # In the background so that a TERM stops the script at once (cleanup kills
                # what runs in the root).
                in_root "$root" "$(user_of "$root" "$user")" nice -n 19 /bin/sh -c "${f[1]}" &
                wait $! || die "RUN failed: ${f[1]}"
                echo "RUN done in $(since "$t0")"
                ;;
            WORKDIR)
                if [[ ${f[1]} == /* ]]; then workdir=${f[1]}; else workdir=${workdir%/}/${f[1]}; fi
                step "WORKDIR $workdir"
                mkdir -p "$root$workdir"
                ;;
            COPY)
                step "COPY ${f[1]:+--from=${f[1]} }${f[2]:+--chown=${f[2]} }${f[*]:3}"
                if [ -n "${f[1]}" ]; then
                    # From another stage: only the build stage's webcall binary exists here.
                    if [ "${#f[@]}" -ne 5 ] || [ "$(basename "${f[3]}")" != webcall ]; then
                        die "COPY --from=${f[1]} ${f[*]:3}: this script only has the webcall binary"
                    fi
                    copied_bin=${f[4]}
                    [[ $copied_bin != */ ]] || copied_bin=${copied_bin}webcall
                    [[ $copied_bin == /* ]] || copied_bin=${workdir%/}/$copied_bin
                    install -D -m 0755 "$bin" "$root$copied_bin"
                    [ -z "${f[2]}" ] || chroot "$root" chown "${f[2]}" "$copied_bin"
                    echo "$(basename "$bin") from WEBCALL_BIN -> $copied_bin"
                elif [ "$mode" = build ]; then
                    echo "skipped: the build context is only read by the compile"
                else
                    copy_in "$root" "${f[2]}" "${f[@]: -1}" "${f[@]:3:${#f[@]}-4}"
                fi
                ;;
            USER)
                user=${f[1]}
                step "USER $user"
                ;;
            ENV)
                step "ENV ${f[*]:1}"
                image_env+=("${f[@]:1}")
                ;;
            EXPOSE)
                step "EXPOSE ${f[*]:1} (this run picks a free loopback port instead)"
                ;;
            ENTRYPOINT) entrypoint=("${f[@]:1}") ;;
            CMD) cmd=("${f[@]:1}") ;;
            *) die "unexpected record ${f[0]}" ;;
        esac
    done 3<"$records"
}

free_port() {
    python3 -c 'import socket; s=socket.socket(); s.bind(("127.0.0.1", 0)); print(s.getsockname()[1])'
}

# --- main ------------------------------------------------------------------------------------

started=$EPOCHREALTIME
parse_stage "$stage" >"$work/steps"
ensure_pristine_root
root=$work/$stage
t0=$EPOCHREALTIME
fresh_root "$root"
echo "fresh root unpacked in $(since "$t0")"
apply_stage "$root" "$work/steps" "$stage"

if [ "$stage" = build ]; then
    # What the crates' build scripts look up (audiopus_sys and openssl-sys use pkg-config),
    # and CMake for whisper.cpp: the packages the stage installed must provide them.
    step "pkg-config and cmake in the build stage's root"
    in_root "$root" "$as_root" pkg-config --modversion opus openssl ||
        die "pkg-config can't find opus or openssl: the build stage's apt line misses a -dev package"
    in_root "$root" "$as_root" cmake --version | head -n1
    echo
    echo "ok: the build stage's packages install in bookworm (in $(since "$started"))"
    exit 0
fi

argv=("${entrypoint[@]}" "${cmd[@]}")
[ "${#argv[@]}" -gt 0 ] || die "the runtime stage has no CMD"
[ -n "$copied_bin" ] || die "the runtime stage copies no binary from the build stage"

step "ldd $copied_bin (inside the root)"
in_root "$root" "$as_root" ldd "$copied_bin" | tee "$work/ldd"
if grep -q 'not found' "$work/ldd"; then
    die "a library the binary needs is not in the image: add its package to the runtime stage's apt-get line"
fi
# shellcheck disable=SC2016 # $1 is expanded by the shell inside the root
resolved=$(in_root "$root" "$as_root" /bin/sh -c 'command -v "$1"' sh "${argv[0]}") ||
    die "CMD ${argv[0]}: not found in the image's PATH"
echo "CMD ${argv[*]}: ${argv[0]} is $resolved"

who=$(user_of "$root" "$user")
uid=${who%%:*}
data_dir=$(printf '%s\n' "${image_env[@]}" | sed -n 's/^DATA_DIR=//p' | tail -n1)
port=$(free_port)
step "CMD ${argv[*]} as USER $user (uid:gid groups home: $who), HTTP on 127.0.0.1:$port"
# The image's ENV, then what this host run changes: PORT is a free port; BIND is 127.0.0.1
# because a chroot shares the host's network (in a container 0.0.0.0 is the container's own
# address), and the media plane follows BIND, so it needs no SFU_PUBLIC_IP; SFU_UDP_PORT=0
# lets the OS pick free UDP ports and one shard is enough. Nothing else is required in dev
# (APP_ENV unset): SQLite in DATA_DIR, and the secrets are generated there.
image_env+=(PORT="$port" BIND=127.0.0.1 SFU_UDP_PORT=0 SFU_SHARDS=1)
t0=$EPOCHREALTIME
root_command "$root" "$who" "${argv[@]}"
"${root_argv[@]}" </dev/null >"$work/server.log" 2>&1 &
server_pid=$!

status=
deadline=$((SECONDS + 30))
while [ "$SECONDS" -lt "$deadline" ]; do
    status=$(curl -sS --max-time 2 -o "$work/readyz" -w '%{http_code}' \
        "http://127.0.0.1:$port/readyz" 2>/dev/null) || status=
    [ "$status" = 200 ] && break
    if ! kill -0 "$server_pid" 2>/dev/null; then
        cat "$work/server.log" >&2
        die "the server exited before /readyz answered"
    fi
    sleep 0.1
done
if [ "$status" != 200 ]; then
    tail -n 40 "$work/server.log" >&2
    die "/readyz did not answer 200 within 30 s (last status: ${status:-none})"
fi
echo "GET /readyz -> 200 after $(since "$t0"): $(cat "$work/readyz")"

page=$(curl -sS --max-time 5 -o /dev/null -w '%{http_code} %{content_type}' "http://127.0.0.1:$port/")
echo "GET / -> $page (the web app from STATIC_DIR)"
[[ $page == "200 text/html"* ]] || die "/ did not serve the web app from STATIC_DIR"
owner=$(stat -c %u "/proc/$server_pid")
[ "$owner" = "$uid" ] || die "the server runs as uid $owner, not USER $user ($uid)"
echo "the server runs as uid $owner (USER $user)"
if [ -n "$data_dir" ]; then
    echo "DATA_DIR $data_dir, written by it:"
    in_root "$root" "$as_root" ls -ln "$data_dir"
fi

stop_server
echo "stopped with SIGTERM: exit status $server_status"
[ "$server_status" -eq 0 ] || { tail -n 20 "$work/server.log" >&2; die "the server did not stop cleanly"; }
echo
echo "ok: the runtime stage works in a clean bookworm root (in $(since "$started"))"
