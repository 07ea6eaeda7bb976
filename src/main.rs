/// mimalloc: the planner builds and drops tens of thousands of small nodes, the server
/// many short-lived buffers; glibc's malloc spent a third of `tess plan` in page faults
/// and arena locks (measured with perf, benches/plan.sh).
#[global_allocator]
static GLOBAL: mimalloc::MiMalloc = mimalloc::MiMalloc;

fn main() -> std::process::ExitCode {
    tesseract_ci::cli::main()
}
