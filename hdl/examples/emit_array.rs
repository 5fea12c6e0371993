fn main() {
    let spec = std::env::args().nth(1).unwrap_or_else(|| "4x4".into());
    let cfg = trimac_hdl::Config::from_array_spec(&spec).unwrap();
    print!("{}", trimac_hdl::verilog::emit_top(&cfg));
}
