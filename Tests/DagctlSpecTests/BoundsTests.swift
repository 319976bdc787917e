import Testing
@testable import DagctlSpec

@Suite("bounded versions")
struct BoundedVersionTests {
    /// A 241-character dotted version: it used to become a 258-character plan id.
    let long = Array(repeating: "1", count: 121).joined(separator: ".")

    @Test func aLongVersionIsRefusedAtParseTime() {
        #expect(long.count == 241)
        #expect(Version(long) == nil)
        let found = issues { try ProjectConfig.parse("# config\nversion: \"\(long)\"\n", file: "main:.dagctl/config.yaml") }
        #expect(found.count == 1)
        #expect(found.first?.line == 2)
        #expect(found.first?.key == "version")
        #expect(found.first?.message.contains("is too long (at most 64 characters)") == true, "\(found)")
        #expect(found.first?.description.hasPrefix("main:.dagctl/config.yaml:2: 'version': version '1.1.1.1") == true, "\(found)")
    }

    @Test func hugeComponentsAreRefusedWithAReason() {
        let digits30 = String(repeating: "9", count: 30)
        for text in ["version: \(digits30)\n", "version: \"1.\(digits30)\"\n", "version: 1234567890\n"] {
            let found = issues { try ProjectConfig.parse(text, file: "c") }
            #expect(found.count == 1, "\(text)")
            #expect(found.first?.line == 1)
            #expect(found.first?.message.contains("at most 9 digits") == true, "\(text): \(found)")
        }
        #expect(Version("1.\(digits30)") == nil)
        #expect(Version("1234567890") == nil)
        #expect(Version("999999999")?.components == [999_999_999])
    }

    @Test func theLongestVersionMakesAValidPlanID() throws {
        let version = try #require(Version(Array(repeating: "123456789", count: 6).joined(separator: ".") + ".1234"))
        #expect(version.text.count == 64)
        let env = String(repeating: "e", count: 32)
        #expect(Names.isValid(env))
        // The plan id's shape (DagctlPlanning's Plan.id): <env>-v<version>-<10 hex>.
        let id = "\(env)-v\(version.text)-0123456789"
        #expect(Names.isValidPlanID(id))
        #expect(id.utf8.count < 128)
        #expect(try ProjectConfig.parse("version: \"\(version.text)\"\n", file: "c").version == version)
    }
}

@Suite("NUL and escaping paths")
struct NULAndPathTests {
    @Test func envValuesWithNULAreRefused() {
        let text = "ref: main\nenv:\n  GOOD: \"1\"\n  BAD: \"a\\0b\"\n"
        let found = issues { try EnvironmentSpec.parse(text, name: "dev", file: "environments/dev.yaml", members: nil) }
        #expect(found.count == 1, "\(found)")
        #expect(found.first?.key == "env.BAD")
        #expect(found.first?.line == 4)
        #expect(found.first?.message.contains("NUL") == true)
        #expect(found.first?.description.contains("\0") == false)
    }

    @Test func envNamesAreStillChecked() {
        let found = issues { try EnvironmentSpec.parse("ref: main\nenv:\n  \"A\\0B\": x\n  1X: y\n", name: "dev", file: "f", members: nil) }
        #expect(found.count == 2, "\(found)")
        #expect(found.allSatisfy { $0.message.contains("not a valid environment variable name") })
        #expect(found.allSatisfy { $0.description.contains("\0") == false })
        #expect(found.map(\.line) == [3, 4])
    }

    @Test func refWithNULIsRefused() {
        let found = issues { try EnvironmentSpec.parse("ref: \"main\\0evil\"\n", name: "dev", file: "f", members: nil) }
        #expect(found.map(\.key) == ["ref"])
        #expect(found.first?.message.contains("NUL") == true)
    }

    static let pathKeys = ["model-paths", "test-paths", "macro-paths", "seed-paths", "snapshot-paths", "source-paths", "data-paths"]

    @Test(arguments: pathKeys)
    func dbtPathsMayNotLeaveTheProject(_ key: String) {
        for bad in ["../..", "/etc", "models/../../x", ".."] {
            let text = "name: shop\nversion: '1.0'\n\(key):\n  - models\n  - \"\(bad)\"\n"
            let found = issues { try DbtPaths.parse(text, file: "main:transform/dbt_project.yml") }
            #expect(found.count == 1, "\(key): \(bad): \(found)")
            #expect(found.first?.key == key)
            #expect(found.first?.line == 5)
            #expect(found.first?.file == "main:transform/dbt_project.yml")
            #expect(found.first?.message.contains("'\(bad)' must") == true, "\(found)")
        }
    }

    @Test func flowListOnOneLine() {
        let found = issues { try DbtPaths.parse("name: shop\nmodel-paths: [\"../..\"]\n", file: "dbt_project.yml") }
        #expect(found.map(\.description) == ["dbt_project.yml:2: 'model-paths': '../..' must not contain '..'; dbt paths stay inside the project folder"])
    }

    @Test func goodPathsStillWork() throws {
        let paths = try DbtPaths.parse("name: shop\nmodel-paths: [\"./src/models/\", sql]\ndata-paths: [data]\n", file: "dbt_project.yml")
        #expect(paths.modelPaths == ["src/models", "sql"])
        #expect(paths.seedPaths == ["data"])
        #expect(paths.testPaths == ["tests"])
    }
}
