# Debian packages, built with `cpack -G DEB` in a build directory (CPack's DEB generator,
# one package per install component):
#
#   waferwatch-agent      /usr/bin/waferwatch-agent, its systemd unit, example agent.yaml
#   waferwatch-collector  /usr/bin/waferwatch-collector, its systemd unit, example
#                         collector.yaml and phases.yaml, roles.sql and the SQL migrations
#                         (/usr/share/waferwatch/sql), the dashboards
#                         (/usr/share/waferwatch/dashboards); depends on waferwatch-cli
#   waferwatch-cli        /usr/bin/waferwatch (keygen, slo): on collectors, and on any node
#                         that generates its own key
#   postgresql-15-waferwatch  the PostgreSQL extension (pgext/: the ww_hist type and its
#                         functions), on the database server, as Debian's
#                         postgresql-15-tdigest or -hll: /usr/lib/postgresql/15/lib and
#                         /usr/share/postgresql/15/extension (WW_PG_* in pgext/CMakeLists.txt)
#
# Each ships its binaries' man pages (/usr/share/man/man1/*.1.gz) and the README with the
# docs pages it links, the generated reference (docs/reference/) included.
# Depends come from dpkg-shlibdeps (dpkg-dev), plus libmicrohttpd12 by name for the agent
# and the collector: they load it with dlopen when metrics.listen is set (lib/ww_mhd.h),
# which shlibdeps cannot see. Binaries are stripped; each package has a -dbgsym .ddeb
# beside it, and a DEP-5 copyright file. The examples are documentation
# (/usr/share/doc/<package>/examples), not conffiles: /etc/waferwatch belongs to the
# operator and no upgrade touches it. Units go to /lib/systemd/system (Debian 12) and are
# enabled but never started or restarted by the packages (deploy/systemd/deb/).
# tests/packaging/test_packaging.sh builds and checks the packages.

set(WW_SYSTEMD_UNIT_DIR "/lib/systemd/system" CACHE PATH
    "where the packages put the systemd units (installed by component installs only)")
set(WW_DEB_MAINTAINER "waferwatch maintainers <waferwatch@example.invalid>" CACHE STRING
    "Maintainer field of the Debian packages")

# Directories the install creates: 0755 whatever the umask of whoever runs cpack.
set(CMAKE_INSTALL_DEFAULT_DIRECTORY_PERMISSIONS
    OWNER_READ OWNER_WRITE OWNER_EXECUTE GROUP_READ GROUP_EXECUTE WORLD_READ WORLD_EXECUTE)
set(ww_doc_perms OWNER_READ OWNER_WRITE GROUP_READ WORLD_READ)

# The binaries are installed by their own directories (install(TARGETS ... COMPONENT)).
# The units have an absolute destination, so they are left out of a plain
# `cmake --install` (which must not write to /lib as a side effect) and installed only
# by the per-component installs CPack runs.
foreach(unit agent collector)
    install(FILES ${PROJECT_SOURCE_DIR}/deploy/systemd/waferwatch-${unit}.service
            DESTINATION ${WW_SYSTEMD_UNIT_DIR} PERMISSIONS ${ww_doc_perms}
            COMPONENT ${unit} EXCLUDE_FROM_ALL)
endforeach()

# /usr/share/doc/<package>/copyright in Debian's machine-readable format (DEP-5). The
# repository has no LICENSE file, so the packages say "All rights reserved"; whoever adds
# one names it here (the packaging test fails until the two agree).
set(WW_COPYRIGHT_HOLDER "waferwatch maintainers" CACHE STRING
    "copyright holder named in /usr/share/doc/<package>/copyright")
set(ww_copyright ${PROJECT_BINARY_DIR}/deb/copyright)
file(WRITE ${ww_copyright}
"Format: https://www.debian.org/doc/packaging-manuals/copyright-format/1.0/
Upstream-Name: ${PROJECT_NAME}
Upstream-Contact: ${WW_DEB_MAINTAINER}

Files: *
Copyright: 2026 ${WW_COPYRIGHT_HOLDER}
License: all-rights-reserved

License: all-rights-reserved
 Copyright 2026 ${WW_COPYRIGHT_HOLDER}. All rights reserved.
 .
 The ${PROJECT_NAME} source carries no license file.
")

# README.md and the pages it links, in the same relative places (docs/, bench/), so its
# links work in /usr/share/doc/<package> too.
set(ww_doc_pages architecture operations runbook)
list(TRANSFORM ww_doc_pages PREPEND ${PROJECT_SOURCE_DIR}/docs/)
list(TRANSFORM ww_doc_pages APPEND .md)
# The extension's package is named as Debian names them (postgresql-MAJOR-name), after the
# PostgreSQL it is built against (WW_PG_CONFIG, found by pgext/), and its docs go under
# that name. Without the extension (-DWW_PGEXT=OFF) there is no such package: the three
# others are made as before (and the collector's schema cannot be migrated with them).
if(WW_PGEXT)
    execute_process(COMMAND ${WW_PG_CONFIG} --version OUTPUT_VARIABLE ww_pg_version
                    OUTPUT_STRIP_TRAILING_WHITESPACE)
    if(NOT ww_pg_version MATCHES "^PostgreSQL ([0-9]+)")
        message(FATAL_ERROR "cannot read the PostgreSQL major version from '${ww_pg_version}' "
                            "(${WW_PG_CONFIG} --version)")
    endif()
    set(WW_PG_MAJOR ${CMAKE_MATCH_1})
    set(WW_PGEXT_PACKAGE postgresql-${WW_PG_MAJOR}-waferwatch)
    install(FILES ${PROJECT_SOURCE_DIR}/README.md ${ww_copyright}
            DESTINATION share/doc/${WW_PGEXT_PACKAGE} PERMISSIONS ${ww_doc_perms}
            COMPONENT pgext)
    set(ww_pgext_hint "install ${WW_PGEXT_PACKAGE} of this version on the database server, then ")
else()
    set(WW_PGEXT_PACKAGE "")
    set(ww_pgext_hint "")
endif()
foreach(comp agent collector cli)
    install(FILES ${PROJECT_SOURCE_DIR}/README.md
            DESTINATION share/doc/waferwatch-${comp} PERMISSIONS ${ww_doc_perms}
            COMPONENT ${comp})
    install(FILES ${ww_doc_pages}
            DESTINATION share/doc/waferwatch-${comp}/docs PERMISSIONS ${ww_doc_perms}
            COMPONENT ${comp})
    install(FILES ${PROJECT_SOURCE_DIR}/bench/RESULTS.md
            DESTINATION share/doc/waferwatch-${comp}/bench PERMISSIONS ${ww_doc_perms}
            COMPONENT ${comp})
    install(FILES ${ww_copyright}
            DESTINATION share/doc/waferwatch-${comp} PERMISSIONS ${ww_doc_perms}
            COMPONENT ${comp})
endforeach()

# The generated reference (docs/reference/, linked from README.md and docs/operations.md)
# beside the pages that link it.
foreach(comp agent collector cli)
    install(FILES ${PROJECT_SOURCE_DIR}/docs/reference/agent.md
                  ${PROJECT_SOURCE_DIR}/docs/reference/collector.md
            DESTINATION share/doc/waferwatch-${comp}/docs/reference
            PERMISSIONS ${ww_doc_perms} COMPONENT ${comp})
endforeach()

# Man pages: man/*.1 are generated by the binaries (`--reference man`, checked in; the
# test `reference` fails when they differ), and each package ships its binaries' pages in
# /usr/share/man/man1 compressed with gzip -9n, as Debian policy asks (no name or time
# stamp in the .gz, so the build is reproducible). `cmake --build BUILD --target
# reference` regenerates man/ and docs/reference/ from the binaries just built.
find_program(WW_GZIP gzip)
if(NOT WW_GZIP)
    message(FATAL_ERROR "gzip not found (Debian package gzip): the man pages are compressed with it")
endif()
set(ww_man_gz "")
foreach(pair agent:waferwatch-agent collector:waferwatch-collector cli:waferwatch)
    string(REPLACE ":" ";" pair ${pair})
    list(GET pair 0 comp)
    list(GET pair 1 page)
    set(gz ${PROJECT_BINARY_DIR}/man/${page}.1.gz)
    add_custom_command(OUTPUT ${gz}
        COMMAND sh -c "'${WW_GZIP}' -9n -c \"$1\" >\"$2\"" sh
                ${PROJECT_SOURCE_DIR}/man/${page}.1 ${gz}
        DEPENDS ${PROJECT_SOURCE_DIR}/man/${page}.1
        COMMENT "gzip -9n man/${page}.1"
        VERBATIM)
    list(APPEND ww_man_gz ${gz})
    install(FILES ${gz} DESTINATION ${CMAKE_INSTALL_MANDIR}/man1
            PERMISSIONS ${ww_doc_perms} COMPONENT ${comp})
endforeach()
file(MAKE_DIRECTORY ${PROJECT_BINARY_DIR}/man)
add_custom_target(man_pages ALL DEPENDS ${ww_man_gz})
add_custom_target(reference
    COMMAND ${PROJECT_SOURCE_DIR}/tests/docs/check_reference.sh --update ${PROJECT_BINARY_DIR}
            ${PROJECT_SOURCE_DIR} $<TARGET_FILE:waferwatch-agent>
            $<TARGET_FILE:waferwatch-collector> $<TARGET_FILE:waferwatch>
    COMMENT "Regenerating docs/reference/ and man/ with the binaries' --reference"
    VERBATIM)
add_dependencies(reference waferwatch-agent waferwatch-collector waferwatch)

install(FILES ${PROJECT_SOURCE_DIR}/deploy/agent.example.yaml
        DESTINATION share/doc/waferwatch-agent/examples RENAME agent.yaml
        PERMISSIONS ${ww_doc_perms} COMPONENT agent)

install(FILES ${PROJECT_SOURCE_DIR}/deploy/collector.example.yaml
        DESTINATION share/doc/waferwatch-collector/examples RENAME collector.yaml
        PERMISSIONS ${ww_doc_perms} COMPONENT collector)
install(FILES ${PROJECT_SOURCE_DIR}/deploy/phases.example.yaml
        DESTINATION share/doc/waferwatch-collector/examples RENAME phases.yaml
        PERMISSIONS ${ww_doc_perms} COMPONENT collector)
install(FILES ${PROJECT_SOURCE_DIR}/deploy/roles.sql
        DESTINATION share/waferwatch/sql PERMISSIONS ${ww_doc_perms} COMPONENT collector)
# The schema is embedded in the collector; these copies are for the DBA to read: the
# versioned migrations, the repeatable files (every function, view and grant) and
# schema.sql, what they yield.
install(DIRECTORY ${PROJECT_SOURCE_DIR}/collector/migrations/
        DESTINATION share/waferwatch/sql/migrations FILE_PERMISSIONS ${ww_doc_perms}
        COMPONENT collector FILES_MATCHING PATTERN "*.sql")
install(DIRECTORY ${PROJECT_SOURCE_DIR}/collector/sql/
        DESTINATION share/waferwatch/sql/repeatable FILE_PERMISSIONS ${ww_doc_perms}
        COMPONENT collector FILES_MATCHING PATTERN "*.sql")
install(FILES ${PROJECT_SOURCE_DIR}/collector/schema.sql
        DESTINATION share/waferwatch/sql PERMISSIONS ${ww_doc_perms} COMPONENT collector)
# Whatever dashboards/ holds when the package is built (JSON, SQL, README).
install(DIRECTORY ${PROJECT_SOURCE_DIR}/dashboards/
        DESTINATION share/waferwatch/dashboards FILE_PERMISSIONS ${ww_doc_perms}
        COMPONENT collector PATTERN ".*" EXCLUDE PATTERN "*~" EXCLUDE)

# Maintainer scripts, one set per daemon package.
set(WW_VERSION ${PROJECT_VERSION})
function(ww_deb_scripts comp config upgrade_hint)
    set(WW_PACKAGE waferwatch-${comp})
    set(WW_UNIT waferwatch-${comp}.service)
    set(WW_CONFIG ${config})
    set(WW_UPGRADE_HINT ${upgrade_hint})
    set(out "")
    foreach(script postinst prerm postrm)
        set(dst ${PROJECT_BINARY_DIR}/deb/${comp}/${script})
        configure_file(${PROJECT_SOURCE_DIR}/deploy/systemd/deb/${script}.in ${dst} @ONLY
                       FILE_PERMISSIONS OWNER_READ OWNER_WRITE OWNER_EXECUTE GROUP_READ
                                        GROUP_EXECUTE WORLD_READ WORLD_EXECUTE)
        list(APPEND out ${dst})
    endforeach()
    string(TOUPPER ${comp} COMP)
    set(CPACK_DEBIAN_${COMP}_PACKAGE_CONTROL_EXTRA ${out} PARENT_SCOPE)
endfunction()
ww_deb_scripts(agent /etc/waferwatch/agent.yaml
    "Restart it when ready: systemctl restart waferwatch-agent (its spool survives).")
# The extension first: the migrations run CREATE EXTENSION waferwatch, which only finds it
# in the database server's own directories (migration 0015 refuses without it).
ww_deb_scripts(collector /etc/waferwatch/collector.yaml
    "First ${ww_pgext_hint}migrate as the owner (waferwatch-collector --pg '... user=waferwatch_owner' --migrate-only), then restart the collectors one at a time, then the agents.")

set(CPACK_GENERATOR DEB)
set(CPACK_PACKAGE_NAME waferwatch)
set(CPACK_PACKAGE_VENDOR waferwatch)
set(CPACK_PACKAGE_VERSION ${PROJECT_VERSION})
set(CPACK_PACKAGE_CONTACT ${WW_DEB_MAINTAINER})
set(CPACK_PACKAGING_INSTALL_PREFIX /usr)
set(CPACK_COMPONENTS_ALL agent collector cli)
if(WW_PGEXT)
    list(APPEND CPACK_COMPONENTS_ALL pgext)
endif()
set(CPACK_DEB_COMPONENT_INSTALL ON)
set(CPACK_DEBIAN_FILE_NAME DEB-DEFAULT)
set(CPACK_DEBIAN_PACKAGE_MAINTAINER ${WW_DEB_MAINTAINER})
set(CPACK_DEBIAN_PACKAGE_SECTION net)
set(CPACK_DEBIAN_PACKAGE_PRIORITY optional)
set(CPACK_DEBIAN_PACKAGE_SHLIBDEPS ON)
# Stripped binaries (objcopy --strip-unneeded), their debug information in one
# <package>-dbgsym_<version>_<arch>.ddeb beside each .deb, found by build id
# (/usr/lib/debug/.build-id/xx/yyyy.debug), where gdb looks for it.
set(CPACK_DEBIAN_DEBUGINFO_PACKAGE ON)
# CPack writes the dbgsym tree after CPACK_PRE_BUILD_SCRIPTS, with the umask of whoever
# runs cpack (umask 077: a /usr/lib/debug only root can read). It runs objcopy to extract
# each .debug file: through this wrapper, which makes the file 0644 and the directories
# up to the dbgsym root 0755.
find_program(WW_OBJCOPY objcopy)
if(NOT WW_OBJCOPY)
    message(FATAL_ERROR "objcopy not found (Debian package binutils): the packages are stripped with it")
endif()
set(ww_objcopy ${PROJECT_BINARY_DIR}/deb/objcopy-dbgsym.sh)
file(WRITE ${ww_objcopy} "#!/bin/sh
# Written by cmake/packaging.cmake: objcopy for CPack's dbgsym packages, modes fixed.
set -e
'${WW_OBJCOPY}' \"$@\"
[ \"$1\" = --only-keep-debug ] || exit 0
out=$3
chmod 0644 \"$out\"
d=$(dirname \"$out\")
while :; do
    chmod 0755 \"$d\"
    case $d in */*-dbgsym | *-dbgsym | */ | . | /) break ;; esac
    d=$(dirname \"$d\")
done
")
file(CHMOD ${ww_objcopy} PERMISSIONS OWNER_READ OWNER_WRITE OWNER_EXECUTE GROUP_READ
     GROUP_EXECUTE WORLD_READ WORLD_EXECUTE)
set(CPACK_OBJCOPY_EXECUTABLE ${ww_objcopy})
set(CPACK_DEBIAN_PACKAGE_CONTROL_STRICT_PERMISSION ON)
set(CPACK_INSTALL_DEFAULT_DIRECTORY_PERMISSIONS ${CMAKE_INSTALL_DEFAULT_DIRECTORY_PERMISSIONS})
# The install creates directories through mkdir(), which the umask of whoever runs cpack
# narrows (umask 077 would ship a /usr/share/doc/waferwatch-agent only root can read):
# make every staged directory 0755 before the packages are made. Shared objects (the
# extension's waferwatch.so, which install(TARGETS) makes 0755) become 0644, as
# dh_fixperms makes them in Debian's own postgresql-15-* packages: the loader maps them,
# nothing executes them (Debian policy 10.2).
set(ww_fix_dirs ${PROJECT_BINARY_DIR}/deb/fix-directory-modes.cmake)
file(WRITE ${ww_fix_dirs} [=[
file(GLOB_RECURSE ww_all LIST_DIRECTORIES true "${CPACK_TEMPORARY_INSTALL_DIRECTORY}/*")
foreach(p "${CPACK_TEMPORARY_INSTALL_DIRECTORY}" ${ww_all})
    if(IS_SYMLINK "${p}")
    elseif(IS_DIRECTORY "${p}")
        file(CHMOD "${p}" DIRECTORY_PERMISSIONS OWNER_READ OWNER_WRITE OWNER_EXECUTE
             GROUP_READ GROUP_EXECUTE WORLD_READ WORLD_EXECUTE)
    elseif(p MATCHES "\\.so(\\.[0-9.]+)?$")
        file(CHMOD "${p}" FILE_PERMISSIONS OWNER_READ OWNER_WRITE GROUP_READ WORLD_READ)
    endif()
endforeach()
]=])
set(CPACK_PRE_BUILD_SCRIPTS ${ww_fix_dirs})

# libmicrohttpd.so.12 (WW_MHD_SONAME in lib/ww_mhd.h), dlopened for metrics.listen; 0.9.71:
# the oldest that header check accepts.
set(WW_DEB_MHD "libmicrohttpd12 (>= 0.9.71)")

set(CPACK_DEBIAN_AGENT_PACKAGE_NAME waferwatch-agent)
set(CPACK_DEBIAN_AGENT_PACKAGE_DEPENDS "adduser, ${WW_DEB_MHD}")
set(CPACK_DEBIAN_AGENT_PACKAGE_SUGGESTS "waferwatch-cli")
set(CPACK_DEBIAN_AGENT_DESCRIPTION
    "waferwatch node agent for wafer-scale inference systems
The agent samples power, coolant and wafer temperatures, throttling, load and
per-request latency histograms of the node it runs beside, spools every batch to
disk and streams it over CURVE-encrypted ZeroMQ to a waferwatch collector, forgetting
a batch only once the collector acknowledges it. Includes a hardened systemd unit,
enabled but not started until /etc/waferwatch/agent.yaml exists.")

set(CPACK_DEBIAN_COLLECTOR_PACKAGE_NAME waferwatch-collector)
# procps: /bin/kill, the unit's ExecReload.
set(CPACK_DEBIAN_COLLECTOR_PACKAGE_DEPENDS
    "adduser, procps, ${WW_DEB_MHD}, waferwatch-cli (= ${PROJECT_VERSION})")
# The extension belongs on the database server, which need not be the collector's host.
if(WW_PGEXT)
    set(CPACK_DEBIAN_COLLECTOR_PACKAGE_SUGGESTS
        "postgresql, ${WW_PGEXT_PACKAGE} (= ${PROJECT_VERSION}), prometheus-alertmanager, grafana")
else()
    set(CPACK_DEBIAN_COLLECTOR_PACKAGE_SUGGESTS "postgresql, prometheus-alertmanager, grafana")
endif()
set(CPACK_DEBIAN_COLLECTOR_DESCRIPTION
    "waferwatch collector: agent telemetry into PostgreSQL, SLO evaluation
The collector authenticates agents by their CURVE keys against an allowlist, writes
their batches into PostgreSQL (binary COPY, one transaction per group, acked after
COMMIT), and evaluates the latency, capacity, power and thermal SLOs of a phased
buildout, pushing alerts to Alertmanager. Includes a hardened systemd unit, the SQL
migrations and roles script, and the Grafana dashboards.")

set(CPACK_DEBIAN_CLI_PACKAGE_NAME waferwatch-cli)
set(CPACK_DEBIAN_CLI_DESCRIPTION
    "waferwatch command line: key generation and SLO reports
waferwatch keygen writes the CURVE key pairs agents and collectors authenticate with;
waferwatch slo prints each phase's capacity, power, thermal figures, SLO attainment,
error budgets, burn rates and firing alerts from PostgreSQL.")

set(CPACK_DEBIAN_PGEXT_PACKAGE_NAME ${WW_PGEXT_PACKAGE})
set(CPACK_DEBIAN_PGEXT_PACKAGE_DEPENDS "postgresql-${WW_PG_MAJOR}")
set(CPACK_DEBIAN_PGEXT_PACKAGE_SECTION database)
set(CPACK_DEBIAN_PGEXT_DESCRIPTION
    "waferwatch extension for PostgreSQL ${WW_PG_MAJOR}: compact, exact latency histograms
The ww_hist type stores an exponential (OpenTelemetry-layout) latency histogram in a
compact sparse encoding, with its merge aggregate ww_merge (parallel safe),
ww_quantile, ww_hist_le and ww_hist_count_above implemented in C with the same code as
the waferwatch agent. The waferwatch collector's schema needs it (CREATE EXTENSION
waferwatch, run by the collector's migrations).")

include(CPack)
