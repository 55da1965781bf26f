// The source of rotary_test_pch (tests/CMakeLists.txt), which builds the
// precompiled header every test reuses; it has no tests of its own.
