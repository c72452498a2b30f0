# %post of the RPM (Cargo.toml, [package.metadata.generate-rpm]); debian/postinst's twin.
# The plugin's default state directory on a packaged install (README, "State and safety"):
# root's and closed to everyone else, unlike /var/tmp, so no local user can pre-create a
# monitoring user's directory there and keep its checks from saving state. Each monitoring
# user gets a private directory of its own; root makes its own on its first run. On EL,
# Nagios runs as nagios, Icinga 2 as icinga and EPEL's NRPE as nrpe. Users added later:
# install -d -o USER -g USER -m 0700 /var/lib/check-workers/$(id -u USER)
# Runs on install ($1 = 1) and upgrade ($1 = 2) alike: an existing directory is kept.
set -e

install -d -o root -g root -m 0755 /var/lib/check-workers
for user in nagios icinga nrpe; do
    uid=$(id -u "$user" 2>/dev/null) || continue
    dir=/var/lib/check-workers/$uid
    if [ ! -e "$dir" ] && [ ! -L "$dir" ]; then
        install -d -o "$user" -g "$(id -g "$user")" -m 0700 "$dir"
    fi
done

exit 0
