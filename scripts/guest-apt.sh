# Sourced by scripts/build-guest.sh and scripts/build-kernel.sh (needs $G): a private apt
# configuration under $G/apt, so that Debian packages are fetched with `apt-get download` and
# unpacked with dpkg -x without touching the host's apt state.
apt_dir="$G/apt"
APT=(-o Dir::Etc::SourceList="$apt_dir/sources.list" -o Dir::Etc::SourceParts=/dev/null
     -o Dir::State::Lists="$apt_dir/lists" -o Dir::Cache="$apt_dir/cache"
     -o Dir::State::status=/dev/null
     -o APT::Architecture=amd64 -o APT::Architectures::=amd64 -o APT::Architectures::=arm64)
apt_ready=0
apt_update() {
    mkdir -p "$apt_dir/lists/partial" "$apt_dir/cache/archives/partial"
    cat > "$apt_dir/sources.list" <<'EOF'
deb [arch=amd64,arm64] http://deb.debian.org/debian bookworm main
deb [arch=amd64,arm64] http://deb.debian.org/debian bookworm-updates main
deb [arch=amd64,arm64] http://deb.debian.org/debian-security bookworm-security main
deb [arch=amd64,arm64] http://deb.debian.org/debian bookworm-backports main
EOF
    apt-get -qq "${APT[@]}" update
    apt_ready=1
}
ensure_apt() {
    # Lists older than a day may name .debs the mirror has dropped: refresh them first.
    if [ "$apt_ready" = 0 ]; then
        if [ -z "$(find "$apt_dir/lists" -maxdepth 1 -name '*Packages*' -mtime -1 2>/dev/null)" ]; then
            apt_update
        fi
        apt_ready=1
    fi
}
# download DIR PKG...: the .debs into DIR (retried once after a list refresh)
download() {
    local dir=$1; shift
    ensure_apt
    mkdir -p "$dir"
    (cd "$dir" && apt-get -qq "${APT[@]}" download "$@" 2>/dev/null) \
        || { apt_update; (cd "$dir" && apt-get -qq "${APT[@]}" download "$@" 2>/dev/null); }
}
