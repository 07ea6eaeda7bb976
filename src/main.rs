fn main() -> std::process::ExitCode {
    tesseract_ci::cli::main()
}
