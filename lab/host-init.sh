#!/bin/bash
# groundwork lab: PID 1 of one lab host. Runs inside the host's own network, mount, UTS and PID
# namespaces. Gives the host its own /etc, /var, /srv, /opt, /home, /usr/local (overlays), /root, /run,
# /proc and /sys; starts sshd and the daemons of its roles; then stays as the reaper of the namespace.
# Args: NAME IP ROLES(comma list) HOSTDIR LABDIR
set -eu
name=$1 ip=$2 roles=$3 hostdir=$4 labdir=$5

hostname "$name"
mount --make-rprivate /
# /usr stays shared with the machine, except the web docroot (RHEL's /usr/share/nginx/html), which must
# be per host: groundwork writes served files there.
mkdir -p /usr/share/nginx
for d in etc var srv opt home usr/local usr/share/nginx; do
  key=${d//\//_}
  mkdir -p "$hostdir/upper/$key" "$hostdir/work/$key"
  mount -t overlay "gwlab-$key" -o "lowerdir=/$d,upperdir=$hostdir/upper/$key,workdir=$hostdir/work/$key" "/$d"
done
mount -t tmpfs -o mode=0700 gwlab-root /root
mount -t tmpfs -o mode=0755 gwlab-run /run
# /sys: `ip netns exec` already mounted the namespace's own sysfs.
mkdir -p /var/log/gwlab /root/.ssh
install -m 0755 "$labdir/systemctl" /usr/local/bin/systemctl
mkdir -p /etc/gwlab/units /etc/gwlab/enabled
# What every boot creates in the empty /run (systemd-tmpfiles' part).
cat > /etc/gwlab/tmpfiles <<'T'
/run/gwlab 0755 root:root
/run/lock 1777 root:root
/run/sshd 0755 root:root
/run/haproxy 0755 root:root
/run/nginx 0755 root:root
/run/dbus 0755 root:root
/run/kea 0755 root:root
T

# sshd: own host key, key-only root login.
install -m 0600 "$hostdir/ssh_host_ed25519_key" /etc/ssh/gwlab_host_ed25519_key
install -m 0644 "$hostdir/ssh_host_ed25519_key-cert.pub" /etc/ssh/gwlab_host_ed25519_key-cert.pub
install -m 0644 "$hostdir/authorized_keys" /etc/ssh/gwlab_authorized_keys
cat > /etc/ssh/gwlab_sshd_config <<CFG
ListenAddress $ip
Port 22
HostKey /etc/ssh/gwlab_host_ed25519_key
HostCertificate /etc/ssh/gwlab_host_ed25519_key-cert.pub
PermitRootLogin prohibit-password
PasswordAuthentication no
KbdInteractiveAuthentication no
UsePAM no
AuthorizedKeysFile /etc/ssh/gwlab_authorized_keys
PidFile /run/sshd.pid
MaxSessions 64
MaxStartups 64:30:128
Subsystem sftp /usr/lib/openssh/sftp-server
CFG
# Ready when the port answers, not when the pidfile exists: a killed sshd leaves its pidfile behind.
cat > /etc/gwlab/units/sshd <<U
START="/usr/sbin/sshd -D -e -f /etc/ssh/gwlab_sshd_config"
READY="exec 3<>/dev/tcp/$ip/22"
U

has() { case ",$roles," in *",$1,"*) return 0;; esac; return 1; }

if has dns; then
  # A RHEL-style BIND layout: /etc/named.conf, /etc/named/, /var/named; user bind (Debian's).
  mkdir -p /etc/named /var/named/data
  chown -R root:bind /var/named; chmod 0770 /var/named /var/named/data
  rndc-confgen -a -k rndc-key -c /etc/rndc.key >/dev/null 2>&1
  chown root:bind /etc/rndc.key; chmod 0640 /etc/rndc.key
  # Debian's rndc looks for /etc/bind/rndc.key; RHEL's for /etc/rndc.key: plain `rndc` works with both.
  mkdir -p /etc/bind && cp -p /etc/rndc.key /etc/bind/rndc.key
  # RHEL's stock options: loopback only, until groundwork's options file is adopted.
  cat > /etc/named.conf <<'CFG'
// Lab stand-in for RHEL's stock /etc/named.conf.
options {
        listen-on port 53 { 127.0.0.1; };
        listen-on-v6 port 53 { ::1; };
        directory "/var/named";
        pid-file "/run/named/named.pid";
        allow-query { localhost; };
        recursion yes;
        dnssec-validation yes;
};
include "/etc/rndc.key";
controls { inet 127.0.0.1 port 953 allow { 127.0.0.1; } keys { "rndc-key"; }; };
CFG
  echo "/run/named 0775 root:bind" >> /etc/gwlab/tmpfiles
  cat > /etc/gwlab/units/named <<'U'
START="/usr/sbin/named -g -u bind -c /etc/named.conf"
RELOAD="/usr/sbin/rndc -k /etc/rndc.key reload"
READY="/usr/sbin/rndc -k /etc/rndc.key status"
U
fi

if has upstream; then
  # The site's intranet DNS, outside groundwork's inventory (what dns.options.forwarders point at):
  # authoritative for intranet.test, every query logged (named -g: to its unit's log, /var/log/gwlab/named.log).
  net=${ip%.*}
  mkdir -p /etc/gwlab/upstream /var/log/gwlab/upstream
  chown bind:bind /var/log/gwlab/upstream
  cat > /etc/gwlab/upstream/named.conf <<CFG
options {
        listen-on port 53 { $ip; };
        listen-on-v6 { none; };
        directory "/var/log/gwlab/upstream";
        pid-file none;
        recursion no;
        allow-query { any; };
        dnssec-validation no;
        querylog yes;
};
zone "intranet.test" { type master; file "/etc/gwlab/upstream/intranet.test.zone"; };
CFG
  cat > /etc/gwlab/upstream/intranet.test.zone <<Z
\$TTL 300
@ IN SOA ns.intranet.test. root.intranet.test. 1 3600 900 86400 300
@ IN NS ns.intranet.test.
ns IN A $ip
registry IN A $net.99
Z
  cat > /etc/gwlab/units/named <<U
START="/usr/sbin/named -g -u bind -c /etc/gwlab/upstream/named.conf"
READY="dig +short +time=1 +tries=1 @$ip ns.intranet.test A | grep -q ."
U
fi

if has dhcp; then
  mkdir -p /var/lib/dhcpd; touch /var/lib/dhcpd/dhcpd.leases
  cat > /etc/gwlab/units/dhcpd <<'U'
START="/usr/sbin/dhcpd -f -d -cf /etc/dhcp/dhcpd.conf -lf /var/lib/dhcpd/dhcpd.leases eth0"
READY="grep -q 'Server starting service' /var/log/gwlab/dhcpd.log"
U
  # Kea, the second DHCP backend.
  mkdir -p /var/lib/kea
  cat > /etc/gwlab/units/kea-dhcp4 <<'U'
START="/usr/sbin/kea-dhcp4 -c /etc/kea/kea-dhcp4.conf"
READY="grep -q DHCP4_STARTED /var/log/gwlab/kea-dhcp4.log"
U
  # Debian's unit names (the lab hosts are Debian) are aliases of the RHEL ones.
  ln -s dhcpd /etc/gwlab/units/isc-dhcp-server
  ln -s kea-dhcp4 /etc/gwlab/units/kea-dhcp4-server
fi

if has lb; then
  # firewalld filters for real inside this host's network namespace. It needs a system bus of its own.
  mkdir -p /run/dbus /var/lib/dbus
  [ -s /etc/machine-id ] || dbus-uuidgen > /etc/machine-id
  cat > /etc/gwlab/units/dbus <<'U'
START="/usr/bin/dbus-daemon --system --nofork --nopidfile"
READY="test -S /run/dbus/system_bus_socket"
U
  cat > /etc/gwlab/units/firewalld <<'U'
START="/usr/sbin/firewalld --nofork --nopid"
RELOAD="/usr/bin/firewall-cmd --reload"
READY="/usr/bin/firewall-cmd --state"
U
  mkdir -p /var/lib/haproxy
  cat > /etc/gwlab/units/haproxy <<'U'
START="/usr/sbin/haproxy -W -db -f /etc/haproxy/haproxy.cfg -p /run/haproxy.pid"
RELOAD='/usr/sbin/haproxy -c -q -f /etc/haproxy/haproxy.cfg && kill -USR2 $MAINPID'
# Ready once the master has a worker: the configuration parsed and the listeners are bound.
READY='pgrep -P "$MAINPID" >/dev/null'
U
  # keepalived (VRRP for shared VIPs): in the foreground, logging to its unit's log; a reload re-reads
  # keepalived.conf (SIGHUP).
  mkdir -p /etc/keepalived
  cat > /etc/gwlab/units/keepalived <<'U'
START="/usr/sbin/keepalived --dont-fork --log-console --use-file /etc/keepalived/keepalived.conf"
RELOAD='kill -HUP $MAINPID'
U
fi

if has tftp; then
  # tftpd-hpa (its package's defaults file is what groundwork manages). in.tftpd logs every transfer to
  # syslog: it runs in a mount namespace of its own whose /dev is a small tmpfs (null, zero, urandom and
  # random from the real /dev) where busybox syslogd's /dev/log writes to a log file. The machine's /dev
  # is never touched.
  mkdir -p /srv/tftp
  cat > /etc/gwlab/tftpd-run <<'RUN'
#!/bin/sh
set -e
mkdir -p /run/gwlab/tftp-dev
mount --bind /dev /run/gwlab/tftp-dev
mount -t tmpfs -o mode=0755 gwlab-tftp-dev /dev
for n in null zero urandom random; do : > "/dev/$n"; mount --bind "/run/gwlab/tftp-dev/$n" "/dev/$n"; done
/bin/busybox syslogd -n -O /var/log/gwlab/tftp-transfers.log &
. /etc/default/tftpd-hpa
exec /usr/sbin/in.tftpd --foreground --user "$TFTP_USERNAME" --address "$TFTP_ADDRESS" $TFTP_OPTIONS "$TFTP_DIRECTORY"
RUN
  chmod 0755 /etc/gwlab/tftpd-run
  cat > /etc/gwlab/units/tftpd-hpa <<'U'
START="/usr/bin/unshare -m --propagation private /etc/gwlab/tftpd-run"
READY='ss -Hlun "sport = :69" | grep -q .'
U
fi

if has http; then
  mkdir -p /usr/share/nginx/html
  cat > /etc/nginx/nginx.conf <<'CFG'
# Lab stand-in for RHEL's stock nginx.conf: a default server on port 80 for /usr/share/nginx/html, and
# conf.d/*.conf included (where groundwork puts its site).
user www-data;
worker_processes 1;
pid /run/nginx.pid;
error_log stderr;
events { worker_connections 256; }
http {
    include /etc/nginx/mime.types;
    default_type application/octet-stream;
    access_log /var/log/nginx/access.log;
    sendfile on;
    include /etc/nginx/conf.d/*.conf;
    server {
        listen 80 default_server;
        root /usr/share/nginx/html;
    }
}
CFG
  # Apache (Debian's apache2, the alternative web server groundwork renders a site for): defined,
  # disabled like every daemon of the role.
  cat > /etc/gwlab/apache2-run <<'RUN'
#!/bin/sh
set -e
. /etc/apache2/envvars
mkdir -p "$APACHE_RUN_DIR" "$APACHE_LOCK_DIR"
exec /usr/sbin/apache2 -DFOREGROUND
RUN
  chmod 0755 /etc/gwlab/apache2-run
  cat > /etc/gwlab/units/apache2 <<U
START="/etc/gwlab/apache2-run"
RELOAD='/usr/sbin/apache2ctl -t && kill -USR1 \$MAINPID'
READY="exec 3<>/dev/tcp/$ip/80"
U
  cat > /etc/gwlab/units/nginx <<U
START="/usr/sbin/nginx -g 'daemon off;'"
RELOAD="/usr/sbin/nginx -t -q && /usr/sbin/nginx -s reload"
READY="exec 3<>/dev/tcp/$ip/80"
U
fi

# A freshly installed host: sshd (and on lb hosts the bus and firewalld, as on a fresh RHEL) enabled;
# every daemon of the host's roles installed but stopped and disabled. groundwork enables and starts them.
systemctl enable sshd
if has lb; then systemctl enable dbus firewalld; fi
if has upstream; then systemctl enable named; fi
systemctl gwlab-boot
if has lb; then
  # No NetworkManager here: bind the interface to the default zone explicitly, runtime and permanent.
  firewall-cmd -q --zone=public --add-interface=eth0
  firewall-cmd -q --permanent --zone=public --add-interface=eth0
fi
touch "$hostdir/ready"

# PID 1 of the namespace: reap whatever the daemons leave behind until the lab is torn down.
trap 'exit 0' TERM INT
while :; do
  sleep 3600 &
  wait $! || true
done
