package h1

import "strings"

// IsToken reports whether s is a non-empty RFC 9110 token, as a method or a
// field name must be.
func IsToken(s string) bool {
	for i := 0; i < len(s); i++ {
		if class[s[i]]&cToken == 0 {
			return false
		}
	}
	return s != ""
}

// HasToken reports whether the comma-separated lists in values (the
// values of a field such as Connection or TE) hold token, in any case.
func HasToken(values []string, token string) bool {
	for _, v := range values {
		for t := range strings.SplitSeq(v, ",") {
			if strings.EqualFold(strings.TrimSpace(t), token) {
				return true
			}
		}
	}
	return false
}
