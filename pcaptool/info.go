package pcaptool

import (
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"strings"
	"time"

	"github.com/spf13/cobra"

	"capfleet.dev/capfleet/linktype"
	"capfleet.dev/capfleet/pcapfile"
)

// FileInfo summarises one capture file, as `capfleet pcap info` prints it.
type FileInfo struct {
	File          string     `json:"file"`
	Format        string     `json:"format,omitempty"`
	LinkTypes     []LinkType `json:"link_types"`
	Packets       int64      `json:"packets"`
	CapturedBytes int64      `json:"captured_bytes"`
	OriginalBytes int64      `json:"original_bytes"`
	First         *time.Time `json:"first,omitempty"`
	Last          *time.Time `json:"last,omitempty"`
	// Duration is Last minus First; it can be negative, since capture files need not be in time order.
	DurationSeconds float64 `json:"duration_seconds"`
	Error           string  `json:"error,omitempty"`
	// ErrorOffset is the byte offset named by a format error (of the decompressed stream for gzip input).
	ErrorOffset *int64 `json:"error_offset,omitempty"`
}

// LinkType is a raw LINKTYPE_ value with its name, when it has one.
type LinkType struct {
	Value uint32 `json:"value"`
	Name  string `json:"name,omitempty"`
}

func (l LinkType) String() string {
	if l.Name == "" {
		return fmt.Sprint(l.Value)
	}
	return fmt.Sprintf("%s (%d)", l.Name, l.Value)
}

// Info reads a whole capture file. A file that cannot be opened or read to its end yields a FileInfo with
// Error set and the totals of every packet read before the error.
func Info(path string) FileInfo {
	fi := FileInfo{File: path, LinkTypes: []LinkType{}}
	r, err := pcapfile.Open(path)
	if err != nil {
		fi.setError(err)
		return fi
	}
	defer r.Close()
	fi.Format = r.Format()
	// Only the first and last records' times are used: a time.Time is built for those two, not for
	// every packet.
	var firstRec, lastRec pcapfile.Record
	for {
		p, err := r.NextRecord()
		if err == io.EOF {
			break
		}
		if err != nil {
			fi.setError(err)
			break
		}
		if fi.Packets == 0 {
			firstRec = p
		}
		lastRec = p
		fi.Packets++
		fi.CapturedBytes += int64(len(p.Data))
		fi.OriginalBytes += int64(p.Length)
	}
	first, last := firstRec.Time(), lastRec.Time()
	for _, lt := range r.LinkTypes() {
		fi.LinkTypes = append(fi.LinkTypes, linkType(lt))
	}
	if fi.Packets > 0 {
		fi.First, fi.Last = &first, &last
		fi.DurationSeconds = last.Sub(first).Seconds()
	}
	return fi
}

func (fi *FileInfo) setError(err error) {
	fi.Error = err.Error()
	var fe *pcapfile.FormatError
	if errors.As(err, &fe) {
		off := fe.Offset
		fi.ErrorOffset = &off
	}
}

func linkType(lt linktype.Type) LinkType {
	return LinkType{Value: uint32(lt), Name: lt.Name()}
}

func newInfoCommand() *cobra.Command {
	var output string
	c := &cobra.Command{
		Use:   "info FILE...",
		Short: "Summarise capture files: format, link types, packets, bytes, first and last timestamp",
		Long: "Reads every packet of each file (pcap, pcapng, either optionally gzip-compressed) and prints\n" +
			"its format, link types, packet and byte counts, first and last timestamp and duration. A file\n" +
			"that ends mid-record or holds a corrupt record is summarised up to that record, with the error\n" +
			"and its byte offset; the exit status is then non-zero.",
		Args: cobra.MinimumNArgs(1),
		RunE: func(cmd *cobra.Command, args []string) error {
			if output != "text" && output != "json" {
				return fmt.Errorf("--output must be text or json, not %q", output)
			}
			// From here on a failure is about the files, not about how the command was called.
			cmd.SilenceUsage = true
			infos := make([]FileInfo, 0, len(args))
			failed := 0
			for _, path := range args {
				fi := Info(path)
				if fi.Error != "" {
					failed++
				}
				infos = append(infos, fi)
			}
			w := cmd.OutOrStdout()
			var err error
			if output == "json" {
				enc := json.NewEncoder(w)
				enc.SetIndent("", "  ")
				err = enc.Encode(infos)
			} else {
				err = writeText(w, infos)
			}
			if err != nil {
				return err
			}
			if failed > 0 {
				return fmt.Errorf("%d of %d files could not be read to the end", failed, len(args))
			}
			return nil
		},
	}
	c.Flags().StringVarP(&output, "output", "o", "text", "output format: text or json")
	return c
}

func writeText(w io.Writer, infos []FileInfo) error {
	var b strings.Builder
	line := func(k string, v any) { fmt.Fprintf(&b, "%-16s %v\n", k+":", v) }
	for i, fi := range infos {
		if i > 0 {
			b.WriteByte('\n')
		}
		line("File", fi.File)
		if fi.Format != "" {
			line("Format", fi.Format)
		}
		names := make([]string, len(fi.LinkTypes))
		for j, lt := range fi.LinkTypes {
			names[j] = lt.String()
		}
		line("Link types", strings.Join(names, ", "))
		line("Packets", fi.Packets)
		line("Captured bytes", fi.CapturedBytes)
		line("Original bytes", fi.OriginalBytes)
		if fi.First != nil {
			line("First packet", fi.First.Format(time.RFC3339Nano))
			line("Last packet", fi.Last.Format(time.RFC3339Nano))
			line("Duration", fi.Last.Sub(*fi.First))
		}
		if fi.Error != "" {
			line("Error", fi.Error)
		}
	}
	_, err := io.WriteString(w, b.String())
	return err
}
