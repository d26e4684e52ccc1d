package testredis

import "syscall"

// procAttr puts redis-server in its own process group and has the kernel
// kill it if the test binary dies (panic, -timeout), so servers never leak.
func procAttr() *syscall.SysProcAttr {
	return &syscall.SysProcAttr{Setpgid: true, Pdeathsig: syscall.SIGKILL}
}
