package org.bbdirect.interop;

import java.util.ArrayList;
import java.util.Collections;
import java.util.HashSet;
import java.util.LinkedHashMap;
import java.util.List;
import java.util.Map;
import java.util.Set;

/** Minimal "--name value" / "--flag" parser; options may repeat (e.g. several --anchor). */
final class Args {
    private final Map<String, List<String>> values = new LinkedHashMap<>();
    private final Set<String> flags = new HashSet<>();

    Args(String[] argv, int start, Set<String> flagNames) {
        for (int i = start; i < argv.length; i++) {
            String arg = argv[i];
            if (!arg.startsWith("--")) {
                throw new UsageException("unexpected argument: " + arg);
            }
            String name = arg.substring(2);
            if (flagNames.contains(name)) {
                flags.add(name);
                continue;
            }
            if (i + 1 >= argv.length) {
                throw new UsageException("missing value for --" + name);
            }
            values.computeIfAbsent(name, k -> new ArrayList<>()).add(argv[++i]);
        }
    }

    boolean flag(String name) {
        return flags.contains(name);
    }

    List<String> all(String name) {
        return values.getOrDefault(name, Collections.emptyList());
    }

    String opt(String name, String dflt) {
        List<String> v = all(name);
        return v.isEmpty() ? dflt : v.get(v.size() - 1);
    }

    String req(String name) {
        String v = opt(name, null);
        if (v == null) {
            throw new UsageException("--" + name + " is required");
        }
        return v;
    }

    static final class UsageException extends RuntimeException {
        UsageException(String message) {
            super(message);
        }
    }
}
