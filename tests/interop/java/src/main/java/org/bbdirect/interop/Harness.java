package org.bbdirect.interop;

import java.io.FileOutputStream;
import java.io.FileDescriptor;
import java.io.PrintStream;
import java.nio.charset.StandardCharsets;
import java.util.LinkedHashMap;
import java.util.Map;
import java.util.Set;

import org.nhindirect.stagent.NHINDException;

/**
 * Command-line driver of the Direct Project Java reference implementation for the interop tests.
 *
 * <pre>
 *   harness seal   --from A --to B --cert C --key K --recipient-cert R --anchor A [--attach F] [--enc AES128|AES256] --out OUT
 *   harness unseal --in MSG --cert C --key K --anchor A [--peer-cert P] [--extract DIR]
 *   harness mdn    --in MSG --cert C --key K --anchor A --peer-cert P [--disposition processed|dispatched|failed] --out OUT
 * </pre>
 *
 * Exactly one JSON object goes to stdout ({"ok": bool, "error": {...}|null, ...}); exit status 0 iff ok.
 * Everything the RI or its libraries print is sent to stderr so stdout stays machine-readable.
 */
public final class Harness {
    private Harness() {}

    public static void main(String[] argv) {
        PrintStream json = new PrintStream(new FileOutputStream(FileDescriptor.out), true, StandardCharsets.UTF_8);
        System.setOut(System.err);
        Map<String, Object> result;
        int status;
        try {
            if (argv.length == 0) throw new Args.UsageException("command required: seal | unseal | mdn");
            Set<String> flags = Set.of("no-notification-request");
            Args args = new Args(argv, 1, flags);
            result = switch (argv[0]) {
                case "seal" -> SealCommand.run(args);
                case "unseal" -> UnsealCommand.run(args);
                case "mdn" -> MdnCommand.run(args);
                default -> throw new Args.UsageException("unknown command " + argv[0]);
            };
            status = Boolean.TRUE.equals(result.get("ok")) ? 0 : 1;
        } catch (Args.UsageException e) {
            result = failure(e);
            status = 2;
        } catch (Throwable e) {
            result = failure(e);
            status = 1;
        }
        json.println(Json.write(result));
        json.flush();
        System.exit(status);
    }

    private static Map<String, Object> failure(Throwable e) {
        Map<String, Object> out = new LinkedHashMap<>();
        out.put("ok", false);
        out.put("error", describe(e));
        return out;
    }

    /** Error type plus the RI's error code (AgentError/MimeError/TrustError...) when it gave one. */
    static Map<String, Object> describe(Throwable e) {
        Map<String, Object> err = new LinkedHashMap<>();
        err.put("type", e.getClass().getSimpleName());
        Object code = null;
        if (e instanceof NHINDException n && n.getError() != null) {
            code = n.getError().getClass().getSimpleName() + "." + n.getError();
        }
        err.put("code", code);
        err.put("message", String.valueOf(e.getMessage()));
        Throwable cause = e.getCause();
        err.put("cause", cause == null ? null : cause.getClass().getSimpleName() + ": " + cause.getMessage());
        return err;
    }
}
