#[test]
fn both_programs_compile_to_whole_instructions() {
    let [eperm, enosys] = super::programs().unwrap();
    assert!(eperm.len() > 8 * super::DENIED.len(), "{}", eperm.len());
    assert_eq!(eperm.len() % 8, 0);
    assert!(!enosys.is_empty() && enosys.len() % 8 == 0);
}
