package main

import (
	"bufio"
	"bytes"
	"fmt"
	"os/exec"
	"strings"
)

// sharedLibs asks ldd which libraries bin loads, the dynamic loader included, each at the path it is
// loaded from. A static binary has none. A library ldd cannot find is an error: the image would not run.
func sharedLibs(bin string) ([]fileSpec, error) {
	out, err := exec.Command("ldd", bin).CombinedOutput()
	if err != nil {
		if bytes.Contains(out, []byte("not a dynamic executable")) {
			return nil, nil
		}
		return nil, fmt.Errorf("ldd %s: %v: %s", bin, err, bytes.TrimSpace(out))
	}
	return parseLdd(out)
}

// parseLdd reads lines like
//
//	libpcap.so.0.8 => /lib/x86_64-linux-gnu/libpcap.so.0.8 (0x...)
//	/lib64/ld-linux-x86-64.so.2 (0x...)
//	linux-vdso.so.1 (0x...)
func parseLdd(out []byte) ([]fileSpec, error) {
	var libs []fileSpec
	sc := bufio.NewScanner(bytes.NewReader(out))
	for sc.Scan() {
		line := strings.TrimSpace(sc.Text())
		name, target, arrow := strings.Cut(line, "=>")
		if !arrow {
			target = name
		}
		target = strings.TrimSpace(target)
		if strings.HasPrefix(target, "not found") {
			return nil, fmt.Errorf("ldd: %s not found", strings.TrimSpace(name))
		}
		p, _, _ := strings.Cut(target, " (")
		if !strings.HasPrefix(p, "/") {
			continue // the vDSO lives in the kernel
		}
		libs = append(libs, fileSpec{host: p, image: p, mode: 0o755})
	}
	return libs, sc.Err()
}
