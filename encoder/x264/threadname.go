package x264

// ThreadName is the name the threads x264 starts for its slices carry
// (Linux; at most 15 bytes, the kernel's limit).
const ThreadName = "onair-x264"
