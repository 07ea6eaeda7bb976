/// mimalloc behind a bump region for the one-shot commands: see `src/allocator.rs`.
#[global_allocator]
static GLOBAL: tesseract_ci::allocator::Allocator = tesseract_ci::allocator::Allocator;

fn main() -> std::process::ExitCode {
    tesseract_ci::cli::main()
}
