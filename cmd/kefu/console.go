package main

import (
	"bufio"
	"fmt"
	"io"
	"os"
	"strings"

	"kefu/console"
)

// cmdConsole holds console helpers: `kefu console hash-password` reads a
// password from stdin and prints the bcrypt hash for console.users.
func cmdConsole(args []string, stdout, stderr io.Writer) int {
	if len(args) != 1 || args[0] != "hash-password" {
		fmt.Fprintln(stderr, "usage: kefu console hash-password < password.txt")
		return 2
	}
	line, err := bufio.NewReader(os.Stdin).ReadString('\n')
	if err != nil && err != io.EOF {
		fmt.Fprintln(stderr, "kefu console:", err)
		return 1
	}
	pw := strings.TrimRight(line, "\r\n")
	if len(pw) < 8 {
		fmt.Fprintln(stderr, "kefu console: the password must be at least 8 characters")
		return 1
	}
	h, err := console.HashPassword(pw)
	if err != nil {
		fmt.Fprintln(stderr, "kefu console:", err)
		return 1
	}
	fmt.Fprintln(stdout, h)
	return 0
}
