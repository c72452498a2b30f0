# %postun of the RPM; debian/postrm's twin. Tick files are only a baseline for the next run:
# erasing the package ($1 = 0) removes them. An upgrade ($1 = 1) keeps them.
# cargo-generate-rpm 0.21.1 cannot list directories in a package, so rpm leaves behind the
# directories it made for the files; erasing removes the package's own ones (rmdir: only if
# empty, nothing of anyone else's).
if [ "$1" = 0 ]; then
    rm -rf /var/lib/check-workers
    for dir in icinga2 nagios nrpe grafana sudoers; do
        rmdir /usr/share/doc/check-workers/$dir 2>/dev/null
    done
    rmdir /usr/share/doc/check-workers 2>/dev/null
fi

exit 0
