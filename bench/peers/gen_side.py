#!/usr/bin/env python3
"""gen_side.py GW_ENV OUT KEY KNOWN_HOSTS PREFIX [MC_XML] -- the peers' job for side-by-side.sh.

Same data as the groundwork environment GW_ENV (made like the project's bench/scale.sh): the same nodes
(names, roles, MACs, IPs from nodes.yaml), the same three hosts and addresses (environment.yaml), one
reverse zone per /24 of the machine network as groundwork has (environment.yaml), the same ingress role for the 80/443 backends (services.yaml loadbalancer.ingress, default worker) and the same
firewalld services (services.yaml firewall.services). The peers' files go under PREFIX on the same hosts;
the firewalld service XML (MC_XML: a copy of what groundwork wrote) and the zone's services are shared.

OUT/job.json (the templates' data), OUT/inventory.ini (Ansible), OUT/inventory.py (pyinfra); OUT/render/HOST/PREFIX/...: the
reference render of every file the peers manage under PREFIX (plain Jinja2, trim_blocks like Ansible).
"""
import ipaddress, json, os, shutil, sys

import jinja2
import yaml

HERE = os.path.dirname(os.path.abspath(__file__))


def job(env_dir, prefix, mc_xml):
    env = yaml.safe_load(open(f"{env_dir}/environment.yaml"))
    svc = yaml.safe_load(open(f"{env_dir}/services.yaml"))
    hosts = {h: env["hosts"][h]["address"] for h in ("ns1", "lb1", "bastion")}
    nodes = []
    for n in yaml.safe_load(open(f"{env_dir}/nodes.yaml"))["nodes"]:
        a, b, c, d = str(n["ip"]).split(".")
        nodes.append(dict(name=n["name"], role=n["role"], ip=str(n["ip"]), o3=int(c), o4=int(d),
                          net3=f"{a}.{b}.{c}", mac=n["mac"]))
    # One reverse zone per /24 of the machine network, as groundwork makes them (4 for the /22 that
    # bench/scale.sh sets, whatever N), plus any /24 outside it that holds a node.
    nets = set()
    for net in env["networks"]["machine"]:
        net = ipaddress.ip_network(net)
        nets |= {str(s.network_address).rsplit(".", 1)[0] for s in
                 (net.subnets(new_prefix=24) if net.prefixlen <= 24 else [net.supernet(new_prefix=24)])}
    nets |= {x["net3"] for x in nodes}
    rev = []
    for net3 in sorted(nets, key=lambda s: [int(p) for p in s.split(".")]):
        a, b, c = net3.split(".")
        rev.append(dict(o3=int(c), name=f"{c}.{b}.{a}.in-addr.arpa"))
    ingress = (svc.get("loadbalancer") or {}).get("ingress", "worker")
    j = dict(cluster=env["cluster"]["name"], domain=env["cluster"]["base_domain"], serial=2020112201,
             ns_ip=hosts["ns1"], lb_ip=hosts["lb1"], bastion_ip=hosts["bastion"], nodes=nodes, rev_zones=rev,
             ingress_roles=[ingress], fw_services=list(svc["firewall"]["services"]), prefix=prefix)
    if mc_xml:
        j["mc_xml"] = os.path.abspath(mc_xml)
    return j, hosts


def render(j, out):
    env = jinja2.Environment(loader=jinja2.FileSystemLoader(f"{HERE}/templates"), trim_blocks=True,
                             keep_trailing_newline=True, undefined=jinja2.StrictUndefined)
    p = j["prefix"]
    files = {f"ns1{p}/var/named/{j['domain']}.zone": ("fwd.zone.j2", {}),
             f"ns1{p}/etc/named.{j['cluster']}.zones": ("named.zones.j2", {}),
             f"ns1{p}/etc/dhcp/dhcpd.conf": ("dhcpd.conf.j2", {}),
             f"lb1{p}/etc/haproxy/haproxy.cfg": ("haproxy.cfg.j2", {})}
    for z in j["rev_zones"]:
        files[f"ns1{p}/var/named/{z['name']}.zone"] = ("rev.zone.j2", {"zone": z})
    for path, (tpl, extra) in files.items():
        os.makedirs(os.path.dirname(f"{out}/{path}"), exist_ok=True)
        with open(f"{out}/{path}", "w") as f:
            f.write(env.get_template(tpl).render(**j, **extra))
    os.makedirs(f"{out}/bastion{p}/var/www/html", exist_ok=True)
    for name in ("bootstrap.ign", "master.ign", "worker.ign"):
        shutil.copy(f"{HERE}/files/{name}", f"{out}/bastion{p}/var/www/html/{name}")


def main():
    env_dir, out, key, kh, prefix = sys.argv[1:6]
    mc_xml = sys.argv[6] if len(sys.argv) > 6 else ""
    os.makedirs(out, exist_ok=True)
    j, hosts = job(env_dir, prefix, mc_xml)
    with open(f"{out}/job.json", "w") as f:
        json.dump(j, f, indent=1)
    with open(f"{out}/inventory.ini", "w") as f:
        f.write("[infra]\n" + "".join(f"{h} ansible_host={ip}\n" for h, ip in hosts.items()))
        f.write(f"[infra:vars]\nansible_user=root\nansible_ssh_private_key_file={key}\n"
                f"ansible_ssh_common_args='-o UserKnownHostsFile={kh} -o StrictHostKeyChecking=yes"
                " -o IdentitiesOnly=yes'\nansible_python_interpreter=/usr/bin/python3\n")
    with open(f"{out}/inventory.py", "w") as f:
        f.write(f"_d = dict(ssh_user='root', ssh_key='{key}', ssh_known_hosts_file='{kh}',\n"
                "          ssh_strict_host_key_checking='yes')\n")
        f.write("infra = [" + ", ".join(f"('{h}', dict(ssh_hostname='{ip}', **_d))"
                                        for h, ip in hosts.items()) + "]\n")
    shutil.rmtree(f"{out}/render", ignore_errors=True)
    render(j, f"{out}/render")


if __name__ == "__main__":
    main()
