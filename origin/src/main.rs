//! `keyway`: the origin server binary.

fn main() {
    println!("keyway origin: not built yet");
}
