#!/usr/bin/env bash
# shellcheck disable=SC2015,SC2016  # `a && b || fail` is meant; $MAINPID is literal
# The packaging test (ctest label packaging):
#
#   test_packaging.sh SOURCE_DIR BUILD_DIR YAML_PATHS VERSION
#
#  1. builds the Debian packages with cpack (umask 077, to prove the modes do not depend on
#     it) into a scratch directory;
#  2. checks each .deb (the three of waferwatch and postgresql-15-waferwatch, the
#     PostgreSQL extension): control fields, Depends (every shared library the binaries
#     and the extension's module load must come from a package in Depends), the file list
#     with modes and owners, no conffiles, the maintainer scripts (never start or restart
#     a service), stripped binaries whose debug information is in the package's -dbgsym
#     .ddeb (by build id), the DEP-5 copyright file;
#  3. extracts them into a scratch root and runs the binaries from there (--help,
#     --version, the shipped examples through the config parser);
#  4. checks the systemd units: `systemd-analyze verify --root` must print nothing (a typo'd
#     key is only a warning there, so any output fails; a deliberately broken unit proves
#     the check sees it), `systemd-analyze security --offline` exposure at most 2.0, the
#     hardening settings, stop timeouts above the drain timeouts;
#  5. checks the Kubernetes manifests: YAML parsed by libyaml (yaml_paths), security
#     contexts, probes, ports, volumes referenced, grace periods, image tags; the embedded
#     agent.yaml passes the agent's own --check-config and collector.yaml its parser;
#     Dockerfile.postgres installs the extension's package on the matching PostgreSQL;
#  6. deploy/demo.sh takes --dir (its arguments only: the demo itself builds and runs);
#  7. as root, where a private mount namespace and overlayfs are available: installs,
#     reinstalls, removes and purges the packages with the real dpkg in a throwaway overlay
#     of / (nothing reaches the host), checking the user, directories, enablement and
#     that a key made as docs/operations.md says is accepted by the service user. Hermetic: the
#     overlay first forgets whatever waferwatch the host has (packages, /etc/waferwatch,
#     the user, unit state), and it is proved on a layer where the packages are already
#     installed and configured, as on an SRE's box that followed docs/operations.md;
#  8. as root, in another throwaway overlay with its own network and pid namespaces: the
#     ```sh blocks of docs/operations.md's "A lab on one host" section, verbatim, from a
#     scratch directory, on a host with the packages and PostgreSQL just installed: a page
#     must fire and resolve, and every command must succeed.
# Any missing tool is a failure naming the Debian package (deploy/deps.sh installs them);
# steps 7 and 8 alone are skipped, with a note, where they cannot run.
set -euo pipefail

src=$1 build=$2 yaml_paths=$3 version=$4
tmp=$(mktemp -d /tmp/ww-packaging.XXXXXX)
cleanup() { rm -rf "$tmp"; }
trap cleanup EXIT

fails=0
fail() { echo "FAIL: $*" >&2; fails=$((fails + 1)); }
die() { echo "FAIL: $*" >&2; exit 1; }
step() { echo "== $*"; }

for t in cpack:cmake dpkg-deb:dpkg dpkg-shlibdeps:dpkg-dev systemd-analyze:systemd ldd:libc-bin \
    readelf:binutils; do
    command -v "${t%%:*}" >/dev/null || die "${t%%:*} not found: install the Debian package ${t#*:}"
done
arch=$(dpkg --print-architecture)

# ---------------------------------------------------------------------------------------
step "cpack -G DEB"
out=$tmp/out
if ! (cd "$build" && umask 077 && cpack -G DEB --config "$build/CPackConfig.cmake" -B "$out") \
    >"$tmp/cpack.log" 2>&1; then
    cat "$tmp/cpack.log" >&2
    die "cpack failed"
fi
# The extension's package is named after the PostgreSQL it is built for, as Debian names
# them (postgresql-15-waferwatch), and installs into that server's directories: the
# pg_config the build found (pgext/) says which.
pg_config=$(sed -n 's/^WW_PG_CONFIG:[A-Z]*=//p' "$build/CMakeCache.txt")
[ -x "$pg_config" ] || die "$build was configured without the extension (no WW_PG_CONFIG): install postgresql-server-dev-15"
pg_major=$("$pg_config" --version | sed -n 's/^PostgreSQL \([0-9]*\).*/\1/p')
[ -n "$pg_major" ] || die "cannot read the major version from '$("$pg_config" --version)'"
pg_pkglibdir=$("$pg_config" --pkglibdir)
pg_extdir=$("$pg_config" --sharedir)/extension
pgext=postgresql-$pg_major-waferwatch
pkgs=(waferwatch-agent waferwatch-collector waferwatch-cli "$pgext")
for p in "${pkgs[@]}"; do
    [ -f "$out/${p}_${version}_${arch}.deb" ] || die "no $out/${p}_${version}_${arch}.deb (cpack.log above)"
done
n=$(find "$out" -maxdepth 1 -name '*.deb' | wc -l)
[ "$n" -eq 4 ] || fail "cpack made $n packages, expected 4: $(ls "$out")"
deb() { echo "$out/${1}_${version}_${arch}.deb"; }
ddeb() { echo "$out/${1}-dbgsym_${version}_${arch}.ddeb"; }
for p in "${pkgs[@]}"; do
    [ -f "$(ddeb "$p")" ] || fail "no $(ddeb "$p"): the binaries' debug information is not shipped"
done

# ---------------------------------------------------------------------------------------
step "control fields and Depends"
field() { dpkg-deb --field "$(deb "$1")" "$2"; }
# The ELF files each package ships (binaries; the extension's module, which the server
# loads with dlopen), and what its Depends must name besides their libraries.
declare -A bins=([waferwatch-agent]="/usr/bin/waferwatch-agent /usr/bin/waferwatch-sim"
                 [waferwatch-collector]="/usr/bin/waferwatch-collector"
                 [waferwatch-cli]="/usr/bin/waferwatch"
                 [$pgext]="$pg_pkglibdir/waferwatch.so")
# libmicrohttpd12: loaded with dlopen for metrics.listen, named by hand (see below).
# postgresql-15: the server that loads the module (whose symbols it resolves against, no
# NEEDED names it), named by hand too.
declare -A want_deps=([waferwatch-agent]="adduser libc6 libzmq5 libprotobuf-c1 libyaml-0-2 libmicrohttpd12"
                      [waferwatch-collector]="adduser procps waferwatch-cli libc6 libzmq5 libpq5 libprotobuf-c1 libyaml-0-2 libcurl4 libmicrohttpd12"
                      [waferwatch-cli]="libc6 libzmq5 libpq5"
                      [$pgext]="postgresql-$pg_major libc6")
root=$tmp/root
mkdir -p "$root"
for p in "${pkgs[@]}"; do
    [ "$(field "$p" Package)" = "$p" ] || fail "$p: Package is '$(field "$p" Package)'"
    [ "$(field "$p" Version)" = "$version" ] || fail "$p: Version '$(field "$p" Version)', not $version"
    [ "$(field "$p" Architecture)" = "$arch" ] || fail "$p: Architecture '$(field "$p" Architecture)'"
    [ -n "$(field "$p" Maintainer)" ] || fail "$p: no Maintainer"
    [ -n "$(field "$p" Description)" ] || fail "$p: no Description"
    deps=$(field "$p" Depends)
    # Package names alone, one per line.
    dep_names=$(tr ',|' '\n' <<<"$deps" | sed 's/(.*//; s/[[:space:]]//g' | grep -v '^$' || true)
    for d in ${want_deps[$p]}; do
        grep -qx "$d" <<<"$dep_names" || fail "$p: Depends lacks $d: $deps"
    done
    dpkg-deb -x "$(deb "$p")" "$root"
    # Every library the binaries load comes from a package named in Depends (shlibdeps).
    for b in ${bins[$p]}; do
        if [[ "$b" == */bin/* ]]; then
            [ -x "$root$b" ] || { fail "$p: no executable $b"; continue; }
        else
            [ -f "$root$b" ] || { fail "$p: no $b"; continue; }
        fi
        ldd "$root$b" >"$tmp/ldd" 2>&1 || { fail "$p: ldd $b: $(cat "$tmp/ldd")"; continue; }
        if grep -q 'not found' "$tmp/ldd"; then
            fail "$p: $b needs a library that is not installed: $(grep 'not found' "$tmp/ldd")"
        fi
        # The libraries it links directly (NEEDED), where the loader finds them.
        for so in $(readelf -d "$root$b" | sed -n 's/.*(NEEDED).*\[\(.*\)\]$/\1/p'); do
            lib=$(awk -v so="$so" '$1 == so && $2 == "=>" { print $3 }' "$tmp/ldd")
            [ -n "$lib" ] || { fail "$p: $b needs $so, which the loader does not find"; continue; }
            owner=""
            for cand in "$lib" "/usr$lib" "${lib#/usr}" "$(readlink -f "$lib")"; do
                owner=$(dpkg -S "$cand" 2>/dev/null | head -1 | cut -d: -f1) && [ -n "$owner" ] && break
            done
            [ -n "$owner" ] || { fail "$p: $b loads $lib, which no package owns"; continue; }
            grep -qx "$owner" <<<"$dep_names" || fail "$p: $b loads $lib from $owner, not in Depends: $deps"
        done
    done
done
[[ "$(field waferwatch-collector Depends)" == *"waferwatch-cli (= $version)"* ]] ||
    fail "waferwatch-collector must depend on waferwatch-cli (= $version)"
# The extension is for one major version of the server (its magic block says which):
# the package is in Debian's section for it and suggested to the collector's hosts,
# since the database server need not be one of them.
[ "$(field "$pgext" Section)" = database ] || fail "$pgext: Section is '$(field "$pgext" Section)', not database"
[[ "$(field waferwatch-collector Suggests)" == *"$pgext (= $version)"* ]] ||
    fail "waferwatch-collector should suggest $pgext (= $version): $(field waferwatch-collector Suggests)"
# libmicrohttpd is not linked (no NEEDED: a process without metrics.listen never maps it)
# but dlopened by soname (lib/ww_mhd.h), which dpkg-shlibdeps cannot see: the soname the
# binary holds must be the one the package in its Depends ships.
for p in waferwatch-agent waferwatch-collector; do
    b=$root/usr/bin/$p # the binary named like its package (waferwatch-sim serves no metrics)
    [ -x "$b" ] || continue
    needed=$(readelf -d "$b" | sed -n 's/.*(NEEDED).*\[\(.*\)\]$/\1/p')
    if grep -q libmicrohttpd <<<"$needed"; then
        fail "$p: $p links libmicrohttpd; it must only dlopen it"
    fi
    so=$(grep -ao 'libmicrohttpd\.so\.[0-9]*' "$b" | sort -u || true)
    [ "$(wc -w <<<"$so")" -eq 1 ] || { fail "$p: one libmicrohttpd soname expected in $p, found '$so'"; continue; }
    owner=$(dpkg -S "*/$so" 2>/dev/null | head -1 | cut -d: -f1 || true)
    [ -n "$owner" ] || { fail "$p: no installed package ships $so (dlopened by $p)"; continue; }
    dep_names=$(field "$p" Depends | tr ',|' '\n' | sed 's/(.*//; s/[[:space:]]//g')
    grep -qx "$owner" <<<"$dep_names" ||
        fail "$p: $p dlopens $so from $owner, not in Depends: $(field "$p" Depends)"
done

# ---------------------------------------------------------------------------------------
step "contents, modes, maintainer scripts"
# "mode path" lines the package must hold (paths as dpkg-deb lists them).
expect_agent="-rwxr-xr-x ./usr/bin/waferwatch-agent
-rwxr-xr-x ./usr/bin/waferwatch-sim
-rw-r--r-- ./usr/share/man/man1/waferwatch-agent.1.gz
-rw-r--r-- ./lib/systemd/system/waferwatch-agent.service
-rw-r--r-- ./usr/share/doc/waferwatch-agent/README.md
-rw-r--r-- ./usr/share/doc/waferwatch-agent/docs/architecture.md
-rw-r--r-- ./usr/share/doc/waferwatch-agent/docs/operations.md
-rw-r--r-- ./usr/share/doc/waferwatch-agent/docs/runbook.md
-rw-r--r-- ./usr/share/doc/waferwatch-agent/docs/reference/agent.md
-rw-r--r-- ./usr/share/doc/waferwatch-agent/docs/reference/collector.md
-rw-r--r-- ./usr/share/doc/waferwatch-agent/bench/RESULTS.md
-rw-r--r-- ./usr/share/doc/waferwatch-agent/copyright
-rw-r--r-- ./usr/share/doc/waferwatch-agent/examples/agent.yaml"
expect_collector="-rwxr-xr-x ./usr/bin/waferwatch-collector
-rw-r--r-- ./usr/share/man/man1/waferwatch-collector.1.gz
-rw-r--r-- ./lib/systemd/system/waferwatch-collector.service
-rw-r--r-- ./usr/share/doc/waferwatch-collector/README.md
-rw-r--r-- ./usr/share/doc/waferwatch-collector/docs/architecture.md
-rw-r--r-- ./usr/share/doc/waferwatch-collector/docs/operations.md
-rw-r--r-- ./usr/share/doc/waferwatch-collector/docs/runbook.md
-rw-r--r-- ./usr/share/doc/waferwatch-collector/docs/reference/agent.md
-rw-r--r-- ./usr/share/doc/waferwatch-collector/docs/reference/collector.md
-rw-r--r-- ./usr/share/doc/waferwatch-collector/bench/RESULTS.md
-rw-r--r-- ./usr/share/doc/waferwatch-collector/copyright
-rw-r--r-- ./usr/share/doc/waferwatch-collector/examples/collector.yaml
-rw-r--r-- ./usr/share/doc/waferwatch-collector/examples/phases.yaml
-rw-r--r-- ./usr/share/waferwatch/sql/roles.sql
drwxr-xr-x ./usr/share/waferwatch/dashboards/"
for f in "$src"/collector/migrations/*.sql; do
    expect_collector+=$'\n'"-rw-r--r-- ./usr/share/waferwatch/sql/migrations/$(basename "$f")"
done
for f in "$src"/collector/sql/*.sql; do
    expect_collector+=$'\n'"-rw-r--r-- ./usr/share/waferwatch/sql/repeatable/$(basename "$f")"
done
expect_collector+=$'\n'"-rw-r--r-- ./usr/share/waferwatch/sql/schema.sql"
while IFS= read -r f; do
    expect_collector+=$'\n'"-rw-r--r-- ./usr/share/waferwatch/dashboards/${f#"$src"/dashboards/}"
done < <(find "$src/dashboards" -type f ! -name '.*' ! -name '*~' | sort)
expect_cli="-rwxr-xr-x ./usr/bin/waferwatch
-rw-r--r-- ./usr/share/man/man1/waferwatch.1.gz
-rw-r--r-- ./usr/share/doc/waferwatch-cli/README.md
-rw-r--r-- ./usr/share/doc/waferwatch-cli/docs/architecture.md
-rw-r--r-- ./usr/share/doc/waferwatch-cli/docs/operations.md
-rw-r--r-- ./usr/share/doc/waferwatch-cli/docs/runbook.md
-rw-r--r-- ./usr/share/doc/waferwatch-cli/docs/reference/agent.md
-rw-r--r-- ./usr/share/doc/waferwatch-cli/docs/reference/collector.md
-rw-r--r-- ./usr/share/doc/waferwatch-cli/bench/RESULTS.md
-rw-r--r-- ./usr/share/doc/waferwatch-cli/copyright"
# The module 0644 as Debian ships shared objects (policy 10.2; dh_fixperms does it for
# Debian's own postgresql-15-* packages); the control and SQL files where CREATE EXTENSION
# looks for them; the README and copyright under the package's name.
expect_pgext="-rw-r--r-- .$pg_pkglibdir/waferwatch.so
-rw-r--r-- .$pg_extdir/waferwatch.control"
for f in "$src"/pgext/waferwatch--*.sql; do
    expect_pgext+=$'\n'"-rw-r--r-- .$pg_extdir/$(basename "$f")"
done
expect_pgext+=$'\n'"-rw-r--r-- ./usr/share/doc/$pgext/README.md
-rw-r--r-- ./usr/share/doc/$pgext/copyright"
declare -A expect=([waferwatch-agent]="$expect_agent" [waferwatch-collector]="$expect_collector"
                   [waferwatch-cli]="$expect_cli" [$pgext]="$expect_pgext")
for p in "${pkgs[@]}"; do
    dpkg-deb --contents "$(deb "$p")" | awk '{ print $1, $2, $6 }' >"$tmp/contents.$p"
    while IFS= read -r line; do
        grep -qxF -- "${line%% *} root/root ${line#* }" "$tmp/contents.$p" ||
            fail "$p: missing '${line#* }' with mode ${line%% *} root/root"
    done <<<"${expect[$p]}"
    # Directories 0755, files 0644 or 0755, all root's, nothing outside /usr and /lib, and
    # no /etc: the examples are documentation, the operator's /etc/waferwatch is never
    # shipped, so no upgrade can touch it.
    awk -v p="$p" '
        $1 ~ /^d/ && $1 != "drwxr-xr-x" { print p ": directory " $3 " has mode " $1 }
        $1 ~ /^-/ && $1 != "-rw-r--r--" && $1 != "-rwxr-xr-x" { print p ": " $3 " has mode " $1 }
        $2 != "root/root" { print p ": " $3 " is owned by " $2 }
        $3 !~ /^\.\/(usr|lib)\// { print p ": unexpected path " $3 }
    ' "$tmp/contents.$p" >"$tmp/bad"
    while IFS= read -r b; do fail "$b"; done <"$tmp/bad"
    # The extension's package holds those files and nothing else (the directories above
    # them aside): anything more would be loaded into, or shadow files of, every database
    # server it is installed on.
    if [ "$p" = "$pgext" ]; then
        awk '$1 !~ /^d/ { print $1, $3 }' "$tmp/contents.$p" | sort >"$tmp/have"
        sort <<<"${expect[$p]}" >"$tmp/want"
        if ! cmp -s "$tmp/have" "$tmp/want"; then
            fail "$p: files differ from the expected list (< shipped, > expected): $(diff "$tmp/have" "$tmp/want" | grep '^[<>]' | tr '\n' ' ')"
        fi
    fi
    ctl=$tmp/control.$p
    dpkg-deb --control "$(deb "$p")" "$ctl"
    [ ! -e "$ctl/conffiles" ] || fail "$p: has conffiles: $(cat "$ctl/conffiles")"
    if [ "$p" = waferwatch-cli ] || [ "$p" = "$pgext" ]; then
        for s in preinst postinst prerm postrm; do
            [ ! -e "$ctl/$s" ] || fail "$p: unexpected $s"
        done
        continue
    fi
    unit=${p}.service
    for s in postinst prerm postrm; do
        [ -f "$ctl/$s" ] || { fail "$p: no $s"; continue; }
        [ "$(stat -c %a "$ctl/$s")" = 755 ] || fail "$p: $s has mode $(stat -c %a "$ctl/$s")"
        sh -n "$ctl/$s" || fail "$p: $s: shell syntax"
        grep -q "^unit=$unit\$" "$ctl/$s" || fail "$p: $s does not handle $unit"
        # Never start or restart: a collector must not run new code before --migrate-only.
        # (Quoted text and comments are left out: the notes say "systemctl start".)
        if sed -e 's/"[^"]*"//g' -e 's/#.*//' "$ctl/$s" |
            grep -Eq '(deb-systemd-invoke|systemctl|invoke-rc\.d|service)[^#]*[[:space:]](start|restart|try-restart|reload-or-restart)'; then
            fail "$p: $s starts or restarts a service"
        fi
        if command -v shellcheck >/dev/null; then
            shellcheck -s sh "$ctl/$s" >&2 || fail "$p: shellcheck $s"
        fi
    done
    grep -q 'adduser --system --group' "$ctl/postinst" || fail "$p: postinst does not create the user"
    grep -q "deb-systemd-helper enable" "$ctl/postinst" || fail "$p: postinst does not enable $unit"
done

# ---------------------------------------------------------------------------------------
step "stripped binaries, -dbgsym packages"
# Each binary: no symbol table, no debug sections, a build id; its debug information in
# /usr/lib/debug/.build-id/XX/REST.debug of the package's -dbgsym .ddeb, where gdb finds it.
dbgroot=$tmp/dbgroot
mkdir -p "$dbgroot"
for p in "${pkgs[@]}"; do
    dd=$(ddeb "$p")
    [ -f "$dd" ] || continue
    dfield() { dpkg-deb --field "$dd" "$1"; }
    [ "$(dfield Package)" = "$p-dbgsym" ] || fail "$p-dbgsym: Package is '$(dfield Package)'"
    [ "$(dfield Depends)" = "$p (= $version)" ] || fail "$p-dbgsym: Depends '$(dfield Depends)', not '$p (= $version)'"
    dpkg-deb --contents "$dd" | awk '{ print $1, $2, $6 }' >"$tmp/dcontents.$p"
    awk -v p="$p-dbgsym" '
        $1 ~ /^d/ && $1 != "drwxr-xr-x" { print p ": directory " $3 " has mode " $1 }
        $1 ~ /^-/ && $1 != "-rw-r--r--" { print p ": " $3 " has mode " $1 }
        $2 != "root/root" { print p ": " $3 " is owned by " $2 }
        $3 !~ /^\.\/usr\/(lib\/(debug\/.*)?)?$/ { print p ": unexpected path " $3 }
    ' "$tmp/dcontents.$p" >"$tmp/bad"
    while IFS= read -r b; do fail "$b"; done <"$tmp/bad"
    dpkg-deb -x "$dd" "$dbgroot"
done
for p in "${pkgs[@]}"; do
    for b in ${bins[$p]}; do
        f=$root$b
        [ -f "$f" ] || continue
        readelf -S --wide "$f" >"$tmp/sections"
        if grep -Eq '\] \.(symtab|debug_[a-z]+) ' "$tmp/sections"; then
            fail "$p: $b is not stripped: $(grep -Eo '\.(symtab|debug_[a-z]+) ' "$tmp/sections" | tr -d ' ' | tr '\n' ' ')"
        fi
        id=$(readelf -n "$f" | sed -n 's/.*Build ID: *\([0-9a-f]*\).*/\1/p')
        [ -n "$id" ] || { fail "$p: $b has no build id"; continue; }
        dbg=./usr/lib/debug/.build-id/${id:0:2}/${id:2}.debug
        if ! grep -qxF -- "-rw-r--r-- root/root $dbg" "$tmp/dcontents.$p" 2>/dev/null; then
            fail "$p-dbgsym: no $dbg (mode 0644) for $b"
            continue
        fi
        readelf -S --wide "$dbgroot/$dbg" 2>/dev/null | grep -q '\] \.debug_info ' ||
            fail "$p-dbgsym: $dbg has no .debug_info"
        [[ " $(dpkg-deb --field "$(ddeb "$p")" Build-Ids) " == *" $id "* ]] ||
            fail "$p-dbgsym: Build-Ids lacks $id ($b)"
        if command -v gdb >/dev/null; then
            # A function every such file has: main, or the module's magic block function
            # (PG_MODULE_MAGIC).
            fn=main
            [[ "$b" == */bin/* ]] || fn=Pg_magic_func
            gdb -batch -nx -ex "set debug-file-directory $dbgroot/usr/lib/debug" -ex "file $f" \
                -ex "info line $fn" >"$tmp/gdb.out" 2>&1 || true
            grep -q 'Line [0-9]* of ".*\.c"' "$tmp/gdb.out" ||
                fail "$p: gdb finds no source line for $fn in $b with $p-dbgsym: $(tail -2 "$tmp/gdb.out")"
        fi
    done
done

# ---------------------------------------------------------------------------------------
step "copyright files"
# /usr/share/doc/<package>/copyright in the machine-readable format (DEP-5): paragraphs of
# "Field: value" lines and indented continuations, a header with Format and Upstream-Name,
# a "Files: *" paragraph with Copyright and License, the text of every license named.
# The license must be the repository's: its LICENSE/COPYING if it has one, else all rights
# reserved.
license_file=$(find "$src" -maxdepth 1 -type f \( -iname 'LICEN[CS]E*' -o -iname 'COPYING*' \) | head -1)
for p in "${pkgs[@]}"; do
    c=$root/usr/share/doc/$p/copyright
    [ -f "$c" ] || continue # the contents check above names it
    awk -v p="$p" '
        function end_par() {
            if (nf > 0) {
                if (npar == 1 && !("Format" in f)) print p ": copyright: no Format field in the header"
                if (npar == 1 && !("Upstream-Name" in f)) print p ": copyright: no Upstream-Name in the header"
                if ("Files" in f) {
                    files++
                    if (f["Files"] == "*") star = 1
                    if (!("Copyright" in f)) print p ": copyright: Files: " f["Files"] " has no Copyright"
                    if (!("License" in f)) print p ": copyright: Files: " f["Files"] " has no License"
                    else if (!ltext) named[f["License"]] = 1
                }
                if (npar > 1 && !("Files" in f) && ("License" in f) && ltext) text[f["License"]] = 1
            }
            delete f; nf = 0; ltext = 0; last = ""
        }
        /^[ \t]*$/ { end_par(); next }
        /^[ \t]/ { if (last == "") print p ": copyright line " NR ": a continuation outside a field"
                   if (last == "License") ltext = 1
                   next }
        /^[A-Za-z][A-Za-z0-9-]*:/ {
            if (nf == 0) npar++
            k = $0; sub(/:.*/, "", k); v = $0; sub(/^[^:]*:[ \t]*/, "", v)
            if (k in f) print p ": copyright line " NR ": field " k " twice in a paragraph"
            f[k] = v; nf++; last = k
            if (npar == 1 && k == "Format" && v != "https://www.debian.org/doc/packaging-manuals/copyright-format/1.0/")
                print p ": copyright: Format is " v
            next
        }
        { print p ": copyright line " NR ": neither a field nor a continuation: " $0 }
        END {
            end_par()
            if (!files) print p ": copyright: no Files paragraph"
            if (!star) print p ": copyright: no \"Files: *\" paragraph"
            for (l in named) if (!(l in text)) print p ": copyright: license " l " is named but its text is not given"
        }' "$c" >"$tmp/bad"
    while IFS= read -r b; do fail "$b"; done <"$tmp/bad"
    if [ -n "$license_file" ]; then
        first=$(grep -m1 -v '^[[:space:]]*$' "$license_file" | sed 's/^[[:space:]]*//')
        grep -qF -- "$first" "$c" ||
            fail "$p: copyright does not state the repository's $(basename "$license_file") ('$first'): cmake/packaging.cmake"
    else
        grep -q 'All rights reserved' "$c" ||
            fail "$p: the repository has no LICENSE, but copyright does not say 'All rights reserved'"
    fi
    grep -q "^Upstream-Name: waferwatch\$" "$c" || fail "$p: copyright: Upstream-Name is not waferwatch"
done

# ---------------------------------------------------------------------------------------
step "the extracted binaries run"
run() { # run NAME EXPECTED-EXIT CMD... : output in $tmp/run.out
    local name=$1 want=$2 rc=0
    shift 2
    "$@" >"$tmp/run.out" 2>&1 || rc=$?
    if [ "$rc" != "$want" ]; then
        fail "$name: exit $rc, expected $want: $(head -c 600 "$tmp/run.out")"
        return 1
    fi
}
agent=$root/usr/bin/waferwatch-agent
collector=$root/usr/bin/waferwatch-collector
cli=$root/usr/bin/waferwatch
run "agent --version" 0 "$agent" --version && { grep -q "$version" "$tmp/run.out" || fail "agent --version: $(cat "$tmp/run.out")"; }
run "agent --help" 0 "$agent" --help && { grep -q -- '--config' "$tmp/run.out" || fail "agent --help lists no --config"; }
run "collector --version" 0 "$collector" --version && { grep -q "$version" "$tmp/run.out" || fail "collector --version: $(cat "$tmp/run.out")"; }
run "collector --help" 0 "$collector" --help && { grep -q -- '--migrate-only' "$tmp/run.out" || fail "collector --help lists no --migrate-only"; }
run "waferwatch version" 0 "$cli" version && { grep -qx "waferwatch $version" "$tmp/run.out" || fail "waferwatch version: $(cat "$tmp/run.out")"; }
run "waferwatch help" 0 "$cli" help
run "waferwatch keygen" 0 "$cli" keygen "$tmp/collector"
run "waferwatch keygen" 0 "$cli" keygen "$tmp/agent"
[ "$(stat -c %a "$tmp/agent.key")" = 600 ] || fail "keygen: agent.key has mode $(stat -c %a "$tmp/agent.key")"
run "shipped agent.yaml" 0 "$agent" --config "$root/usr/share/doc/waferwatch-agent/examples/agent.yaml" --print-config
run "shipped collector.yaml" 0 "$collector" --config "$root/usr/share/doc/waferwatch-collector/examples/collector.yaml" --print-config

# ---------------------------------------------------------------------------------------
step "systemd units"
# verify --root needs the targets the units order against; /bin/kill is the reload command.
mkdir -p "$root/bin"
cp -P /lib/systemd/system/*.target "$root/lib/systemd/system/" 2>/dev/null || true
[ -x "$root/bin/kill" ] || cp "$(command -v kill 2>/dev/null || echo /bin/kill)" "$root/bin/kill" 2>/dev/null ||
    printf '#!/bin/sh\n' >"$root/bin/kill"
chmod 755 "$root/bin/kill"
verify() { # verify UNIT-PATH: rc 0 and not one line of output
    local rc=0
    systemd-analyze verify --root="$root" "$1" >"$tmp/verify.out" 2>&1 || rc=$?
    [ "$rc" = 0 ] && [ ! -s "$tmp/verify.out" ]
}
units=$root/lib/systemd/system
# The check must see a typo: a broken copy has to fail it.
sed 's/^ProtectSystem=strict$/ProtectSytem=strict/' "$units/waferwatch-agent.service" \
    >"$units/ww-broken.service"
if verify "$units/ww-broken.service"; then
    fail "systemd-analyze verify did not notice a misspelt key: the unit check is blind"
fi
rm -f "$units/ww-broken.service"
duration_s() { # 5s, 500ms, 2m, 1h -> whole seconds (rounded up)
    case $1 in
    *ms) echo $(((${1%ms} + 999) / 1000)) ;;
    *s) echo "${1%s}" ;;
    *m) echo $((${1%m} * 60)) ;;
    *h) echo $((${1%h} * 3600)) ;;
    *) echo "$1" ;;
    esac
}
default_of() { # default_of BINARY KEY -> the default from --help
    "$1" --help | sed -n "s/^  $2 ([a-z]*, default \([^,)]*\).*/\1/p"
}
agent_drain=$(duration_s "$(default_of "$agent" agent.drain_timeout)")
collector_drain=$(duration_s "$(default_of "$collector" collector.drain_timeout)")
[ -n "$agent_drain" ] && [ -n "$collector_drain" ] || fail "no drain_timeout defaults in --help"
for comp in agent collector; do
    u=$units/waferwatch-$comp.service
    if ! verify "$u"; then
        fail "systemd-analyze verify waferwatch-$comp.service: $(cat "$tmp/verify.out")"
    fi
    if ! systemd-analyze security --offline=true --root="$root" --threshold=20 "$u" >"$tmp/sec.out" 2>&1; then
        fail "waferwatch-$comp.service: exposure above 2.0: $(grep -i 'overall' "$tmp/sec.out")"
    fi
    for line in Type=simple User=waferwatch Group=waferwatch ProtectSystem=strict ProtectHome=yes \
        PrivateTmp=yes PrivateDevices=yes NoNewPrivileges=yes CapabilityBoundingSet= \
        "RestrictAddressFamilies=AF_UNIX AF_INET AF_INET6" RestrictNamespaces=yes \
        LockPersonality=yes MemoryDenyWriteExecute=yes SystemCallFilter=@system-service \
        SystemCallArchitectures=native UMask=0077 ConfigurationDirectory=waferwatch \
        Restart=on-failure KillSignal=SIGTERM RestartPreventExitStatus=2 \
        "ExecStart=/usr/bin/waferwatch-$comp --config /etc/waferwatch/$comp.yaml" \
        "ConditionPathExists=/etc/waferwatch/$comp.yaml" WantedBy=multi-user.target; do
        grep -qxF "$line" "$u" || fail "waferwatch-$comp.service lacks '$line'"
    done
    for key in RestartSec StartLimitIntervalSec StartLimitBurst; do
        grep -q "^$key=" "$u" || fail "waferwatch-$comp.service lacks $key="
    done
    ! grep -q '^DynamicUser=yes' "$u" || fail "waferwatch-$comp.service: DynamicUser"
    ! grep -q '^ExecStartPre=' "$u" || fail "waferwatch-$comp.service: ExecStartPre (see the unit's comment)"
    stop=$(duration_s "$(sed -n 's/^TimeoutStopSec=//p' "$u")")
    drain=$([ "$comp" = agent ] && echo "$agent_drain" || echo "$collector_drain")
    [ -n "$stop" ] && [ "$stop" -ge $((drain + 10)) ] ||
        fail "waferwatch-$comp.service: TimeoutStopSec=${stop}s, want >= drain_timeout ${drain}s + 10s"
done
grep -qx 'StateDirectory=waferwatch waferwatch/spool' "$units/waferwatch-agent.service" ||
    fail "waferwatch-agent.service: the spool's StateDirectory"
grep -qxF 'ExecReload=/bin/kill -HUP $MAINPID' "$units/waferwatch-collector.service" ||
    fail "waferwatch-collector.service: ExecReload (SIGHUP re-reads the allowlist)"
spool_default=$(default_of "$agent" spool.dir)
# --help says "default none" for an empty string (the agent then derives the path).
[[ -z "$spool_default" || "$spool_default" == none ||
    "$spool_default" == /var/lib/waferwatch/spool* ]] ||
    fail "agent spool.dir default '$spool_default' is outside the unit's StateDirectory"

# ---------------------------------------------------------------------------------------
step "Kubernetes manifests"
k8s=$src/deploy/k8s
manifests=("$k8s/namespace.yaml" "$k8s/agent-daemonset.yaml" "$k8s/collector-deployment.yaml"
           "$k8s/migrate-job.yaml" "$k8s/kustomization.yaml")
for m in "${manifests[@]}"; do
    [ -f "$m" ] || { fail "missing $m"; continue; }
    "$yaml_paths" "$m" >>"$tmp/k8s.paths" 2>"$tmp/yaml.err" || fail "$(cat "$tmp/yaml.err")"
done
# Lookups in "Kind/name path=value" lines. In a KEY, [*] stands for any index.
key_re() { printf '%s' "$1" | sed -e 's/[][\.*^$|+?(){}]/\\&/g' -e 's/\\\[\\\*\\\]/\\[[0-9]+\\]/g'; }
keys() { grep -E "^$(key_re "$1")=" "$tmp/k8s.paths" | cut -d= -f1 || true; }
vals() { grep -E "^$(key_re "$1")=" "$tmp/k8s.paths" | cut -d= -f2- || true; }
val() { vals "$1" | head -1; }
has() { # has "KEY=VALUE"
    grep -qE "^$(key_re "${1%%=*}")=$(key_re "${1#*=}")\$" "$tmp/k8s.paths" || fail "k8s: expected $1"
}
# The YAML checker must catch a duplicate key and a syntax error.
printf 'apiVersion: v1\nkind: ConfigMap\nmetadata:\n  name: x\n  name: y\n' >"$tmp/dup.yaml"
printf 'apiVersion: v1\nkind: ConfigMap\nmetadata: {name: x\n' >"$tmp/bad.yaml"
for y in "$tmp/dup.yaml" "$tmp/bad.yaml"; do
    ! "$yaml_paths" "$y" >/dev/null 2>&1 || fail "yaml_paths accepted $(basename "$y")"
done
for r in $(vals "Kustomization/- resources[*]"); do
    [ -f "$k8s/$r" ] || fail "kustomization.yaml lists $r, which does not exist"
done

ds=DaemonSet/waferwatch-agent
dep=Deployment/waferwatch-collector
job=Job/waferwatch-migrate
pod=spec.template.spec
for w in $ds $dep $job; do
    has "$w $pod.automountServiceAccountToken=false"
    has "$w $pod.securityContext.seccompProfile.type=RuntimeDefault"
    # The volume the init containers copy secret keys and passwords from: 0400 as written
    # (YAML 1.1 octal, as Kubernetes reads it); the copies are made 0400 by uid 10001.
    has "$w $pod.volumes[*].name=secret"
    while IFS= read -r k; do
        [ "$(val "$k")" = secret ] || continue
        [ "$(val "${k%.name}.secret.defaultMode")" = 0400 ] || fail "$w: volume 'secret' is not defaultMode 0400"
    done < <(keys "$w $pod.volumes[*].name")
    # Every container: no privilege escalation, read-only root, ALL capabilities dropped,
    # resources, the image of this version, every mount a volume of the pod; non-root but
    # for the agent's spool-owner step, which may only add CAP_CHOWN.
    while IFS= read -r k; do
        c=${k%.name}
        cname="$w/$(val "$k")"
        [ "$(val "$c.securityContext.allowPrivilegeEscalation")" = false ] || fail "$cname: allowPrivilegeEscalation"
        [ "$(val "$c.securityContext.readOnlyRootFilesystem")" = true ] || fail "$cname: readOnlyRootFilesystem"
        [ "$(vals "$c.securityContext.capabilities.drop[*]")" = ALL ] || fail "$cname: capabilities not dropped"
        [ -n "$(val "$c.resources.limits.memory")" ] || fail "$cname: no memory limit"
        [ -n "$(val "$c.resources.requests.cpu")" ] || fail "$cname: no cpu request"
        image=$(val "$c.image")
        [ "${image##*:}" = "$version" ] || fail "$cname: image '$image' is not version $version"
        nonroot=$(val "$c.securityContext.runAsNonRoot")
        [ -n "$nonroot" ] || nonroot=$(val "$w $pod.securityContext.runAsNonRoot")
        if [ "$nonroot" != true ]; then
            [ "$cname" = "$ds/spool-owner" ] || fail "$cname: may run as root"
            [ "$(vals "$c.securityContext.capabilities.add[*]")" = CHOWN ] ||
                fail "$cname: root with capabilities '$(vals "$c.securityContext.capabilities.add[*]" | tr '\n' ' ')'"
        fi
        for v in $(vals "$c.volumeMounts[*].name"); do
            vals "$w $pod.volumes[*].name" | grep -qx "$v" || fail "$cname mounts '$v', which is not a volume of the pod"
        done
    done < <(keys "$w $pod.initContainers[*].name"; keys "$w $pod.containers[*].name")
    [ -n "$(keys "$w $pod.containers[*].name")" ] || fail "$w: no containers"
done
# Agent: the spool on the node, node identity, readiness, metrics port, a hostNetwork-free pod.
has "$ds $pod.volumes[*].hostPath.path=/var/lib/waferwatch/spool"
has "$ds $pod.containers[0].volumeMounts[*].mountPath=/var/lib/waferwatch/spool"
has "$ds $pod.containers[0].env[*].name=WW_AGENT_NODE_ID"
has "$ds $pod.containers[0].env[*].valueFrom.fieldRef.fieldPath=spec.nodeName"
has "$ds $pod.containers[0].readinessProbe.httpGet.path=/healthz"
has "$ds $pod.containers[0].ports[*].containerPort=9477"
has "$ds $pod.securityContext.runAsUser=10001"
# Collector: probes on the metrics port, the Service's ports, the PDB, PGPASSFILE.
has "$dep $pod.securityContext.runAsNonRoot=true"
has "$dep $pod.containers[0].readinessProbe.httpGet.path=/healthz"
has "$dep $pod.containers[0].readinessProbe.httpGet.port=metrics"
has "$dep $pod.containers[0].livenessProbe.httpGet.port=metrics"
has "$dep $pod.containers[0].ports[*].containerPort=7878"
has "$dep $pod.containers[0].ports[*].containerPort=9478"
has "$dep $pod.containers[0].env[*].name=PGPASSFILE"
for port in $(vals "Service/waferwatch-collector spec.ports[*].targetPort"); do
    vals "$dep $pod.containers[0].ports[*].name" | grep -qx "$port" ||
        fail "Service/waferwatch-collector targets port '$port', which the pod does not name"
done
has "Service/waferwatch-collector spec.ports[*].port=7878"
has "Service/waferwatch-collector spec.ports[*].port=9478"
has "PodDisruptionBudget/waferwatch-collector spec.minAvailable=1"
has "$job $pod.containers[0].command[*]=--migrate-only"
for w in $ds $dep; do
    cm=$(vals "$w $pod.volumes[*].configMap.name")
    grep -q "^ConfigMap/$cm " "$tmp/k8s.paths" || fail "$w uses ConfigMap '$cm', which no manifest defines"
done

# The embedded configurations, through the real binaries: the agent's full check (keys
# included, with test keys in place of the Secret's), the collector's parser (its
# --check-config needs PostgreSQL).
"$yaml_paths" --get ConfigMap/waferwatch-agent data.agent.yaml "$k8s/agent-daemonset.yaml" >"$tmp/k8s-agent.yaml" ||
    fail "no agent.yaml in the agent ConfigMap"
"$yaml_paths" --get ConfigMap/waferwatch-collector data.collector.yaml "$k8s/collector-deployment.yaml" >"$tmp/k8s-collector.yaml" ||
    fail "no collector.yaml in the collector ConfigMap"
# Until both binaries serve /metrics (metrics.listen), check the rest without that block.
# (--help into a file first: grep -q stops reading at the match, and under pipefail the
# binary's SIGPIPE would read as "no metrics.listen".)
for comp in agent collector; do
    "$root/usr/bin/waferwatch-$comp" --help >"$tmp/help.$comp" 2>&1 || true
    if ! grep -q '^  metrics.listen ' "$tmp/help.$comp"; then
        echo "   NOTE: waferwatch-$comp has no metrics.listen yet: its ConfigMap is checked without it"
        awk '/^metrics:/ { skip = 1; next } skip && /^[ #]/ { next } { skip = 0; print }' \
            "$tmp/k8s-$comp.yaml" >"$tmp/k8s-$comp.tmp" && mv "$tmp/k8s-$comp.tmp" "$tmp/k8s-$comp.yaml"
    fi
done
if ! WW_AGENT_NODE_ID=node-1 "$agent" --config "$tmp/k8s-agent.yaml" --server-key "$tmp/collector.pub" \
    --agent-key "$tmp/agent.key" --check-config >"$tmp/check.out" 2>&1; then
    fail "the ConfigMap's agent.yaml: $(cat "$tmp/check.out")"
fi
if ! "$collector" --config "$tmp/k8s-collector.yaml" --print-config >"$tmp/print.out" 2>&1; then
    fail "the ConfigMap's collector.yaml: $(cat "$tmp/print.out")"
fi
# Drain timeouts as configured there, against the pods' grace periods.
cfg_drain() { duration_s "$(sed -n "s/^  drain_timeout: *\([0-9a-z]*\).*/\1/p" "$1" | head -1)"; }
WW_AGENT_NODE_ID=node-1 "$agent" --config "$tmp/k8s-agent.yaml" --print-config >"$tmp/agent.eff" 2>/dev/null || true
"$collector" --config "$tmp/k8s-collector.yaml" --print-config >"$tmp/collector.eff" 2>/dev/null || true
for pair in "$ds:$tmp/agent.eff" "$dep:$tmp/collector.eff"; do
    w=${pair%%:*}
    d=$(cfg_drain "${pair#*:}")
    g=$(val "$w $pod.terminationGracePeriodSeconds")
    [ -n "$d" ] && [ -n "$g" ] && [ "$g" -ge $((d + 10)) ] ||
        fail "$w: terminationGracePeriodSeconds '$g' must exceed drain_timeout '${d}s' by 10s"
done
# The database server's image (Dockerfile.postgres): the extension package this build
# makes, on a base of the PostgreSQL major version it is built for (its magic block
# refuses any other), installed from the build context; the agent's and collector's image
# (Dockerfile) does not carry it.
dpg=$k8s/Dockerfile.postgres
if [ ! -f "$dpg" ]; then
    fail "missing $dpg (the PostgreSQL image with $pgext)"
else
    from=$(sed -n 's/^FROM[[:space:]]\{1,\}\([^[:space:]]*\).*/\1/p' "$dpg" | tail -1)
    [[ "$from" == postgres:$pg_major-* || "$from" == postgres:$pg_major ]] ||
        fail "Dockerfile.postgres: FROM '$from', not postgres:$pg_major (the extension is built for PostgreSQL $pg_major)"
    grep -Eq "^COPY[[:space:]]+${pgext}_\*\.deb[[:space:]]" "$dpg" ||
        fail "Dockerfile.postgres does not COPY ${pgext}_*.deb from the build context"
    grep -Eq "apt-get install .*${pgext}_\*\.deb" "$dpg" ||
        fail "Dockerfile.postgres does not install ${pgext}_*.deb"
fi
! grep -q 'waferwatch\.so\|postgresql-[0-9]*-waferwatch' "$k8s/Dockerfile" ||
    fail "deploy/k8s/Dockerfile (the daemons' image) installs the extension: it belongs in Dockerfile.postgres"
if command -v kubectl >/dev/null && kubectl kustomize "$k8s" >"$tmp/kustomize.out" 2>&1; then
    echo "   (kubectl kustomize: ok)"
elif command -v kubectl >/dev/null; then
    fail "kubectl kustomize $k8s: $(cat "$tmp/kustomize.out")"
fi

# ---------------------------------------------------------------------------------------
step "deploy/demo.sh --dir"
# Where the demo writes is the caller's choice: --dir DIR, documented in --help, default
# /tmp/ww-demo, which the script names nowhere else. Only runs that stop at the argument
# checks (the demo proper installs packages and builds): --seconds 1 makes sure of it.
demo=$src/deploy/demo.sh
if ! "$demo" --help >"$tmp/demo.help" 2>&1; then
    fail "deploy/demo.sh --help: $(head -3 "$tmp/demo.help")"
elif ! grep -Eq -- '--dir DIR .*default /tmp/ww-demo' "$tmp/demo.help"; then
    fail "deploy/demo.sh --help does not document --dir DIR (default /tmp/ww-demo): $(cat "$tmp/demo.help")"
fi
rc=0
"$demo" --seconds 1 --dir >"$tmp/demo.out" 2>&1 || rc=$?
[ "$rc" = 2 ] && grep -q -- '--dir needs a value' "$tmp/demo.out" ||
    fail "deploy/demo.sh --dir without a value: exit $rc, $(cat "$tmp/demo.out")"
hard=$(grep -n '/tmp/ww-demo' "$demo" | grep -v '^[0-9]*:#' | grep -v '^[0-9]*:run=/tmp/ww-demo$' || true)
[ -z "$hard" ] || fail "deploy/demo.sh uses /tmp/ww-demo beyond its --dir default: $hard"

# ---------------------------------------------------------------------------------------
step "dpkg install, upgrade, remove, purge in a throwaway overlay of /"
stage=$tmp/stage
mkdir -p "$stage"
cp "$out"/*.deb "$stage/"
# The layer under the checks: an SRE's box that followed docs/operations.md (packages installed, a
# key made, agent.yaml written, the agent's unit disabled by the admin). The checks must
# pass on it as on a bare host: before they forgot the host's waferwatch, they failed here
# ("no 'enabled, not started' note", "keygen: ... exists; not overwritten").
cat >"$stage/installed.sh" <<'EOF'
#!/bin/bash
set -eu
v=$1
cd /ww-debs
export DEBIAN_FRONTEND=noninteractive
# shellcheck disable=SC2086
dpkg -i waferwatch-cli_${v}_*.deb waferwatch-agent_${v}_*.deb waferwatch-collector_${v}_*.deb \
    postgresql-*-waferwatch_${v}_*.deb >installed.log 2>&1 || { cat installed.log >&2; exit 1; }
# (On a host that has them already, its own key and links stay.)
[ -e /etc/waferwatch/keys/agent.key ] || waferwatch keygen /etc/waferwatch/keys/agent >/dev/null
cp /usr/share/doc/waferwatch-agent/examples/agent.yaml /etc/waferwatch/agent.yaml
rm -f /etc/systemd/system/multi-user.target.wants/waferwatch-agent.service
echo "installed: ok"
EOF
cat >"$stage/forget.sh" <<'EOF'
# Sourced by inside.sh and walk.sh, chrooted in an overlay (fail() is theirs).
# Hermetic: the overlay's lower layers are the host's / (and the installed layer above).
# First forget every trace of waferwatch there, so that what follows is a first install
# whatever the host has: its packages (purged by dpkg, without their maintainer scripts,
# which would act on the host's state), dpkg-statoverrides, /etc/waferwatch,
# /var/lib/waferwatch, the user and group, unit links and deb-systemd-helper's state, the
# extension's package and its files in PostgreSQL's directories (deploy/demo.sh installs
# them without a package). Nothing here reaches the host: every change lands in the
# overlay's tmpfs.
ww_pkgs() {
    dpkg-query -W -f='${Package} ${db:Status-Status}\n' 'waferwatch-*' 'postgresql-*-waferwatch' \
        2>/dev/null | awk '$2 != "not-installed"'
}
old=$(ww_pkgs | awk '{ print $1 }')
if [ -n "$old" ]; then
    for p in $old; do
        rm -f "/var/lib/dpkg/info/$p.preinst" "/var/lib/dpkg/info/$p.postinst" \
            "/var/lib/dpkg/info/$p.prerm" "/var/lib/dpkg/info/$p.postrm"
    done
    # shellcheck disable=SC2086
    dpkg --purge --force-depends --force-remove-reinstreq $old >forget.log 2>&1 ||
        { cat forget.log >&2; fail "could not purge the host's $old in the overlay"; exit 1; }
fi
rm -f /usr/lib/postgresql/*/lib/waferwatch.so /usr/share/postgresql/*/extension/waferwatch.control \
    /usr/share/postgresql/*/extension/waferwatch--*.sql
dpkg-statoverride --list 2>/dev/null | awk '$2 == "waferwatch" || $3 == "waferwatch" || $4 ~ /waferwatch/ { print $4 }' |
    while IFS= read -r path; do dpkg-statoverride --quiet --remove "$path" || true; done
rm -rf /etc/waferwatch /var/lib/waferwatch /etc/systemd/system/waferwatch-* \
    /etc/systemd/system/*.wants/waferwatch-*
find /var/lib/systemd/deb-systemd-helper-enabled /var/lib/systemd/deb-systemd-helper-masked \
    -name 'waferwatch-*' -exec rm -rf {} + 2>/dev/null || true
for f in /etc/passwd /etc/group /etc/shadow /etc/gshadow; do
    [ ! -f "$f" ] || sed -i '/^waferwatch:/d' "$f"
done
left=$(ww_pkgs || true)
if [ -n "$left" ] || getent passwd waferwatch >/dev/null || getent group waferwatch >/dev/null ||
    [ -e /etc/waferwatch ]; then
    fail "the overlay still sees the host's waferwatch: ${left:-} $(getent passwd waferwatch) $(ls -d /etc/waferwatch 2>/dev/null)"
    exit 1
fi
EOF
cat >"$stage/inside.sh" <<'EOF'
#!/bin/bash
# Runs chrooted in the overlay: real dpkg, adduser, deb-systemd-helper.
set -u
v=$1
fails=0
fail() { echo "FAIL: (dpkg) $*" >&2; fails=$((fails + 1)); }
cd /ww-debs
export DEBIAN_FRONTEND=noninteractive
. /ww-debs/forget.sh
a=waferwatch-agent_${v}_*.deb c=waferwatch-collector_${v}_*.deb l=waferwatch-cli_${v}_*.deb
x=postgresql-*-waferwatch_${v}_*.deb
# shellcheck disable=SC2086
dpkg -i $l $a $c $x >dpkg.log 2>&1 || { cat dpkg.log >&2; fail "dpkg -i"; exit 1; }
grep -q 'enabled, not started' dpkg.log || fail "no 'enabled, not started' note"
# The extension where the server loads it from (pg_config of the server it is built for).
xp=$(dpkg-deb --field $x Package)
so=$(dpkg -L "$xp" | grep '/waferwatch\.so$')
[ -f "$so" ] && [ -f "$(pg_config --sharedir)/extension/waferwatch.control" ] ||
    fail "$xp: no module ($so) or no waferwatch.control in $(pg_config --sharedir)/extension"
IFS=: read -r _ _ uid _ _ home shell < <(getent passwd waferwatch) || fail "no user waferwatch"
[ "${uid:-0}" -gt 0 ] && [ "${uid:-0}" -lt 1000 ] || fail "waferwatch is not a system user (uid ${uid:-})"
[ "${home:-}" = /var/lib/waferwatch ] || fail "waferwatch's home is ${home:-}"
[ "${shell:-}" = /usr/sbin/nologin ] || fail "waferwatch's shell is ${shell:-}"
[ "$(stat -c '%U:%G %a' /etc/waferwatch/keys)" = "root:waferwatch 750" ] ||
    fail "/etc/waferwatch/keys is $(stat -c '%U:%G %a' /etc/waferwatch/keys)"
# The spool's parent, for an agent run outside systemd as the service user (issue 15 #13).
[ "$(stat -c '%U:%G %a' /var/lib/waferwatch 2>&1)" = "waferwatch:waferwatch 700" ] ||
    fail "/var/lib/waferwatch is $(stat -c '%U:%G %a' /var/lib/waferwatch 2>&1)"
for u in agent collector; do
    [ -L /etc/systemd/system/multi-user.target.wants/waferwatch-$u.service ] ||
        fail "waferwatch-$u.service not enabled"
done
waferwatch-agent --version >/dev/null || fail "installed waferwatch-agent does not run"
waferwatch-collector --version >/dev/null || fail "installed waferwatch-collector does not run"
# Enrol as docs/operations.md says; the service user must accept the key.
waferwatch keygen /etc/waferwatch/keys/agent >/dev/null && waferwatch keygen /tmp/collector >/dev/null &&
    install -m 0644 /tmp/collector.pub /etc/waferwatch/keys/collector.pub &&
    chown waferwatch:waferwatch /etc/waferwatch/keys/agent.key || fail "keygen"
cp /usr/share/doc/waferwatch-agent/examples/agent.yaml /etc/waferwatch/agent.yaml
if ! runuser -u waferwatch -- waferwatch-agent --config /etc/waferwatch/agent.yaml \
    --server-key /etc/waferwatch/keys/collector.pub --agent-key /etc/waferwatch/keys/agent.key \
    --check-config >check.log 2>&1; then
    fail "the service user cannot use the enrolled key: $(cat check.log)"
fi
# Outside systemd, as the service user, with the default spool: it starts and spools (no
# collector answers: exit 3, batches left in the spool).
runuser -u waferwatch -- waferwatch-agent --config /etc/waferwatch/agent.yaml \
    --server-key /etc/waferwatch/keys/collector.pub --agent-key /etc/waferwatch/keys/agent.key \
    --agent-id pkgtest --metrics-listen "" --run-for 1s --drain-timeout 0 >run.log 2>&1
rc=$?
if { [ "$rc" != 0 ] && [ "$rc" != 3 ]; } || [ ! -s /var/lib/waferwatch/spool/pkgtest/meta ]; then
    fail "the service user cannot run the agent with the default spool (exit $rc): $(tail -5 run.log)"
fi
# Upgrade (the same version again): no restart, an admin's disable is kept.
rm /etc/systemd/system/multi-user.target.wants/waferwatch-agent.service
# shellcheck disable=SC2086
dpkg -i $a >dpkg.log 2>&1 || { cat dpkg.log >&2; fail "dpkg -i (upgrade)"; }
grep -q 'was not restarted' dpkg.log || fail "no 'was not restarted' note on upgrade"
[ ! -e /etc/systemd/system/multi-user.target.wants/waferwatch-agent.service ] ||
    fail "upgrade re-enabled a unit the admin disabled"
# Remove and purge: the operator's files stay.
dpkg -r waferwatch-agent >dpkg.log 2>&1 || { cat dpkg.log >&2; fail "dpkg -r"; }
[ ! -e /usr/bin/waferwatch-agent ] || fail "dpkg -r left /usr/bin/waferwatch-agent"
dpkg -P waferwatch-agent waferwatch-collector waferwatch-cli "$xp" >dpkg.log 2>&1 || { cat dpkg.log >&2; fail "dpkg -P"; }
[ ! -e "$so" ] || fail "dpkg -P $xp left $so"
[ -f /etc/waferwatch/keys/agent.key ] && [ -f /etc/waferwatch/agent.yaml ] ||
    fail "purge removed the operator's files"
if ls /etc/systemd/system/*.wants/waferwatch-* /etc/systemd/system/waferwatch-* >/dev/null 2>&1; then
    fail "purge left unit links: $(ls /etc/systemd/system/*.wants/waferwatch-* /etc/systemd/system/waferwatch-* 2>&1)"
fi
[ "$fails" = 0 ] && echo "dpkg: installed, upgraded, removed, purged: ok"
exit $((fails > 0))
EOF
# Step 8: docs/operations.md's lab section, its ```sh blocks run verbatim as one script.
awk '/^### A lab on one host/ { on = 1; next } on && /^##/ { exit }
     on && /^```sh$/ { code = 1; next } on && /^```$/ { code = 0; next } on && code' \
    "$src/docs/operations.md" >"$stage/readme-lab.sh"
[ -s "$stage/readme-lab.sh" ] || die "docs/operations.md has no '### A lab on one host' section with sh blocks"
cat >"$stage/walk.sh" <<'EOF'
#!/bin/bash
# Runs chrooted in its own overlay, network and pid namespace: a host where the packages
# (the extension's too: this host is the lab's database server) and PostgreSQL were just
# installed (Debian's postgresql package makes and starts the
# cluster "15 main"; it is made here, since the host's cluster is forgotten), then
# docs/operations.md's lab section pasted into a shell from a scratch directory.
set -u
v=$1
fails=0
fail() { echo "FAIL: (lab) $*" >&2; fails=$((fails + 1)); }
cd /ww-debs
export DEBIAN_FRONTEND=noninteractive
. /ww-debs/forget.sh
pg_lsclusters -h 2>/dev/null | awk '{ print $1, $2 }' | while read -r ver name; do
    rm -rf "/etc/postgresql/$ver/$name"
done
rm -rf /var/lib/postgresql/[0-9]* /var/log/postgresql/*
ip link set lo up || { fail "no loopback in the private network namespace"; exit 1; }
a=waferwatch-agent_${v}_*.deb c=waferwatch-collector_${v}_*.deb l=waferwatch-cli_${v}_*.deb
x=postgresql-*-waferwatch_${v}_*.deb
# shellcheck disable=SC2086
dpkg -i $l $a $c $x >dpkg.log 2>&1 || { cat dpkg.log >&2; fail "dpkg -i"; exit 1; }
ver=$(ls /usr/lib/postgresql | sort -n | tail -1)
pg_createcluster "$ver" main --start >pg.log 2>&1 || { cat pg.log >&2; fail "pg_createcluster"; exit 1; }
dir=$(mktemp -d)
cd "$dir" || exit 1
timeout 300 bash -e -o pipefail /ww-debs/readme-lab.sh >lab.log 2>&1
rc=$?
grep -q '^extension waferwatch ' lab.log || fail "the migration did not create the extension waferwatch"
grep -q 'waferwatch slo: exit 1 (a page fires)' lab.log || fail "no page fired"
grep -q 'waferwatch slo: exit 0 (no page)' lab.log || fail "the page did not resolve"
grep -Eq 'SLOBurnRate *\| *ttft-8b *\| *page *\| *resolved' lab.log ||
    fail "no resolved SLOBurnRate page in the alerts table"
[ "$rc" = 0 ] || fail "docs/operations.md's lab commands exit $rc"
if [ "$fails" != 0 ]; then
    echo "--- the lab's output"; cat lab.log
    echo "--- collector log (tail)"; tail -20 /var/log/waferwatch-collector.log
    echo "--- agent log (tail)"; tail -20 /var/log/waferwatch-agent.log
fi >&2
[ "$fails" = 0 ] && echo "lab: docs/operations.md's page fired and resolved: ok"
exit $((fails > 0))
EOF
chmod 755 "$stage/inside.sh" "$stage/installed.sh" "$stage/walk.sh"
# In a private mount namespace (unshare -m: no mount reaches the host), two overlays on a
# tmpfs: "installed" (lower layer /) where installed.sh sets up an SRE's box, then "clean"
# (lower layers: installed's upper layer, then /) where inside.sh forgets it all and runs
# the checks. Each gets the packages, a fresh /proc, /tmp and /run (so that nothing inside
# can talk to the host's systemd), and runs its script chrooted.
ov=$tmp/ov
mkdir -p "$ov"
layer() { # layer NAME LOWERDIRS: the shell text that mounts it at $ov/NAME
    echo "mkdir $ov/$1 $ov/$1.up $ov/$1.work &&
        mount -t overlay overlay -o lowerdir=$2,upperdir=$ov/$1.up,workdir=$ov/$1.work $ov/$1"
}
enter() { # enter NAME SCRIPT: the shell text that runs /ww-debs/SCRIPT chrooted in $ov/NAME
    echo "mkdir -p $ov/$1/ww-debs && cp $stage/* $ov/$1/ww-debs/ &&
        mount -t proc proc $ov/$1/proc && mount --rbind /dev $ov/$1/dev &&
        mount -t tmpfs tmpfs $ov/$1/tmp && mount -t tmpfs tmpfs $ov/$1/run &&
        chroot $ov/$1 /ww-debs/$2 $version"
}
scratch="mount -t tmpfs -o mode=0755 tmpfs $ov"
if [ "$(id -u)" != 0 ]; then
    echo "   SKIP: needs root (a private mount namespace and an overlay of /)"
elif ! command -v unshare >/dev/null || ! unshare -m sh -c "$scratch && $(layer probe /)" 2>"$tmp/ov.err"; then
    ov_skip=1
    echo "   SKIP: no overlayfs in a private mount namespace here: $(cat "$tmp/ov.err" 2>/dev/null)"
elif ! unshare -m sh -c "$scratch && $(layer installed /) && $(enter installed installed.sh) &&
        umount -R $ov/installed && $(layer clean "$ov/installed.up:/") &&
        $(enter clean inside.sh)" >"$tmp/inside.out" 2>&1; then
    cat "$tmp/inside.out" >&2
    fail "dpkg install/upgrade/remove/purge (above)"
elif ! grep -q '^installed: ok$' "$tmp/inside.out"; then
    cat "$tmp/inside.out" >&2
    fail "the installed layer was not made"
elif ! grep -q '^dpkg: installed, upgraded, removed, purged: ok$' "$tmp/inside.out"; then
    cat "$tmp/inside.out" >&2
    fail "the install script did not run to its end in the overlay"
else
    echo "   (dpkg -i, upgrade, -r, -P: ok)"
fi

# ---------------------------------------------------------------------------------------
step "docs/operations.md's lab section, verbatim, in a throwaway overlay with its own network"
if [ "$(id -u)" != 0 ] || [ -n "${ov_skip:-}" ]; then
    echo "   SKIP: as step 7"
elif ! unshare -m -n -p --fork sh -c "$scratch && $(layer walk /) && $(enter walk walk.sh)" \
        >"$tmp/walk.out" 2>&1; then
    cat "$tmp/walk.out" >&2
    fail "docs/operations.md's lab section (above)"
elif ! grep -q '^lab: docs/operations.md.s page fired and resolved: ok$' "$tmp/walk.out"; then
    cat "$tmp/walk.out" >&2
    fail "the lab script did not run to its end"
else
    echo "   (docs/operations.md's lab: a page fired and resolved)"
fi

if [ "$fails" -gt 0 ]; then
    echo "packaging: $fails failure(s)" >&2
    exit 1
fi
echo "packaging: ok (${pkgs[*]} $version $arch)"
