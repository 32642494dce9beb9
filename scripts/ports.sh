# Free loopback ports for scripts/services.sh (sourced; tests/unit/test_ports_sh.py).

free_port() {
    python3 -c 'import socket; s=socket.socket(); s.bind(("127.0.0.1", 0)); print(s.getsockname()[1])'
}

# The port of a service in DIR: chosen once, then reused; never one already given to another
# service in DIR (two free-port picks in a row can return the same port: InfluxDB's HTTP and
# RPC ports once did, and it could not bind).
port_of() {
    local dir=$1 name=$2 file="$1/$2.port" port
    if [ ! -s "$file" ]; then
        for _ in 1 2 3 4 5 6 7 8 9 10; do
            port=$(free_port)
            grep -qsx "$port" "$dir"/*.port || break
        done
        echo "$port" >"$file"
    fi
    cat "$file"
}
