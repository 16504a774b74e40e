fn main() {
    let args: Vec<String> = std::env::args().collect();
    let proto = &args[1];
    let out = &args[2];
    let include = std::path::Path::new(proto).parent().unwrap();
    let fds = protox::compile([proto], [include]).unwrap();
    tonic_prost_build::configure()
        .build_client(true)
        .build_server(true)
        .out_dir(out)
        .compile_fds(fds)
        .unwrap();
}
